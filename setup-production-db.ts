// Production setup: `npm run setup:production`. Reads only the environment (DATABASE_URL, or
// SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY) and refuses to fall back to the embedded database.
import { runSetupCommand } from './src/cli/setup-command.ts';

process.exitCode = await runSetupCommand({ mode: 'production' });
