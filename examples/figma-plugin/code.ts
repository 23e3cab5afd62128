// Main thread: shows the UI, gives it token storage (figma.clientStorage), the system browser
// (figma.openExternal) and Figma's checkout through the bridge, and resizes the selection when
// the UI says the backend allowed it.
import { installPluginBridge } from '../../src/plugin/main.ts';

figma.showUI(__html__, { width: 320, height: 260, themeColors: true });
installPluginBridge(figma, { payments: true });

figma.ui.on('message', (message: unknown) => {
  const m = message as { type?: string; factor?: number } | null;
  if (m?.type === 'selection-size') {
    figma.ui.postMessage({ type: 'selection-size', layers: figma.currentPage.selection.length });
  }
  if (m?.type === 'resize' && typeof m.factor === 'number') {
    for (const node of figma.currentPage.selection) {
      if ('rescale' in node) node.rescale(m.factor);
    }
    figma.notify(`Resized ${figma.currentPage.selection.length} layer(s)`);
  }
});
