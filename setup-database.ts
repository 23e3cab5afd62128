// Development setup: `npm run setup`. Reads .env.local, then .env, under the real environment;
// with no database configured it uses embedded PGlite in ./.data/pglite.
import { runSetupCommand } from './src/cli/setup-command.ts';

process.exitCode = await runSetupCommand({ mode: 'development' });
