// The browser side of the tests, in one place: Debian's Chromium for every browser test (never a
// downloaded build; missing, the tests fail, they never skip), TypeScript bundled for the page, and
// the host page a plugin UI runs in the way Figma loads it: <iframe sandbox="allow-scripts"
// srcdoc="..."> (origin "null", so Chromium enforces CORS) on a page whose own script stands in for
// the plugin's main thread (figma.clientStorage, figma.ui, figma.openExternal) behind the real installPluginBridge.
import { existsSync } from 'node:fs';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from './run.ts';

export const CHROMIUM = '/usr/bin/chromium';

declare global {
  interface Window {
    /** The stand-in main thread: its clientStorage and the URLs it was asked to open. */
    stand: { storage: Map<string, unknown>; opened: string[] };
  }
}

/** Launches Debian's Chromium; throws when it is missing. */
export async function launchChromium(args: string[] = ['--no-sandbox']): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium); they never skip`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args });
}

/** TypeScript (imports relative to the repository's root) as one script for a page. */
export async function bundleForBrowser(contents: string, define: Record<string, string> = {}): Promise<string> {
  const result = await build({
    stdin: { contents, resolveDir: ROOT, loader: 'ts' }, bundle: true, write: false, platform: 'browser', format: 'iife',
    target: 'es2020', logLevel: 'silent', define,
  });
  return result.outputFiles[0]!.text.replace(/<\/(script)/gi, '<\\/$1');
}

/**
 * The host page: `ui` (the plugin UI's script, TypeScript, `define` substituted) in the sandboxed
 * srcdoc iframe; around it the stand-in main thread, exposed as `window.stand`.
 */
export async function pluginHostPage(ui: string, define: Record<string, string> = {}): Promise<string> {
  const uiScript = await bundleForBrowser(ui, define);
  const main = await bundleForBrowser(`
    import { installPluginBridge } from './src/plugin/main.ts';
    const storage = new Map();
    const opened = [];
    const listeners = new Set();
    const iframe = document.getElementById('ui');
    window.addEventListener('message', (e) => {
      if (e.source !== iframe.contentWindow || !e.data || !('pluginMessage' in e.data)) return;
      for (const cb of listeners) cb(e.data.pluginMessage, { origin: e.origin });
    });
    installPluginBridge({
      clientStorage: {
        getAsync: async (k) => (storage.has(k) ? structuredClone(storage.get(k)) : undefined),
        setAsync: async (k, v) => void storage.set(k, structuredClone(v)),
        deleteAsync: async (k) => void storage.delete(k),
      },
      ui: {
        postMessage: (m) => iframe.contentWindow.postMessage({ pluginMessage: m }, '*'),
        on: (_t, cb) => void listeners.add(cb),
        off: (_t, cb) => void listeners.delete(cb),
      },
      openExternal: (url) => void opened.push(url),
    });
    window.stand = { storage, opened };`);
  const srcdoc = `<!doctype html><meta charset="utf-8"><script>${uiScript}</script>`;
  return `<!doctype html><meta charset="utf-8"><title>host</title>
<iframe id="ui" sandbox="allow-scripts" srcdoc="${srcdoc.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"></iframe>
<script>${main}</script>`;
}
