// npm run example:build: bundles examples/figma-plugin/ into what Figma loads: dist/code.js (main
// thread) and dist/ui.html (the UI, its script inlined: Figma loads one HTML file). The backend URL
// is PLUGIN_API_URL (default http://localhost:8787, `npm run example:backend`); keep it in the
// manifest's networkAccess. dist/ is not committed.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const DIR = fileURLToPath(new URL('../examples/figma-plugin/', import.meta.url));

export async function buildExamplePlugin(options: { apiBaseUrl?: string; outDir?: string } = {}): Promise<{ code: string; ui: string }> {
  const outDir = options.outDir ?? join(DIR, 'dist');
  const apiBaseUrl = options.apiBaseUrl ?? 'http://localhost:8787';
  const common = { bundle: true, write: false, minify: false, legalComments: 'none', logLevel: 'silent' } as const;
  const [main, ui] = await Promise.all([
    // Figma's main-thread sandbox: no DOM, no module loader; ES2017 is safe on every Figma client.
    build({ ...common, entryPoints: [join(DIR, 'code.ts')], platform: 'neutral', format: 'iife', target: 'es2017' }),
    build({ ...common, entryPoints: [join(DIR, 'ui.ts')], platform: 'browser', format: 'iife', target: 'es2020',
      define: { API_BASE_URL: JSON.stringify(apiBaseUrl) } }),
  ]);
  const code = main.outputFiles[0]!.text;
  const script = ui.outputFiles[0]!.text.replace(/<\/(script)/gi, '<\\/$1');
  const page = readFileSync(join(DIR, 'ui.html'), 'utf8');
  const tag = '<script type="module" src="./ui.ts"></script>';
  if (!page.includes(tag)) throw new Error(`ui.html must contain ${tag}`);
  const html = page.replace(tag, () => `<script>\n${script}</script>`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'code.js'), code);
  writeFileSync(join(outDir, 'ui.html'), html);
  return { code, ui: html };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { code, ui } = await buildExamplePlugin({ apiBaseUrl: process.env.PLUGIN_API_URL });
  console.log(`examples/figma-plugin/dist: code.js ${code.length} bytes, ui.html ${ui.length} bytes`);
}
