// After `tsc -p tsconfig.build.json`: dist/src/*.js find sql/ and schema/ at ../sql/ and ../schema/
// (src/migrations.ts, src/catalog.ts), so the build carries copies next to dist/src.
import { cpSync, rmSync } from 'node:fs';

for (const dir of ['sql', 'schema']) {
  rmSync(`dist/${dir}`, { recursive: true, force: true });
  cpSync(dir, `dist/${dir}`, { recursive: true });
}
console.log('copied sql/ and schema/ into dist/');
