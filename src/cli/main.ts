// Entry point from source: `npm run cli -- <command>` or `node --import tsx src/cli/main.ts`.
// The package bin (bin/figma-plugin-auth-db.js) does the same from dist/ once built.
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2));
