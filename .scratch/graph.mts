import { build } from 'esbuild';
const r = await build({ entryPoints: ['src/edge/index.ts'], bundle: true, write: false, format: 'esm', platform: 'neutral', packages: 'external', metafile: true, logLevel: 'silent' });
const ext = new Map<string, string[]>();
for (const [f, i] of Object.entries(r.metafile.inputs)) for (const im of i.imports) if (im.external) ext.set(im.path, [...(ext.get(im.path) ?? []), f]);
console.log([...ext.entries()]);
