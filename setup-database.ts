// Development setup: `npm run setup`. Reads .env.local, then .env, under the real environment;
// with no database configured it uses embedded PGlite in PGLITE_DATA_DIR (default ./.data/pglite),
// through the process that has it open if there is one (docs/embedded.md).
import { runSetupCommand } from './src/cli/setup-command.ts';

process.exitCode = await runSetupCommand({ mode: 'development' });
