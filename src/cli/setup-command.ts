import { loadDevelopmentEnv, type Env } from '../core/env.ts';
import { formatSetupError, formatSetupReport } from './setup-report.ts';
import { redact, secretsOf } from '../core/redact.ts';
import { resolveTarget, setup, type SetupMode, type SetupTarget } from '../schema/setup.ts';

export interface SetupCommandOptions {
  mode: SetupMode;
  cwd?: string;
  env?: Env;
  /** Development only: read .env.local and .env (default true). The CLI turns it off for an explicit --database-url. */
  envFiles?: boolean;
  out?: (text: string) => void;
  err?: (text: string) => void;
}

/**
 * What `npm run setup` and `npm run setup:production` do: read the configuration for the mode,
 * set up, print the report or the error block (redacted), and return the exit code.
 */
export async function runSetupCommand(options: SetupCommandOptions): Promise<number> {
  const base = options.env ?? process.env;
  const env = options.mode === 'development' && options.envFiles !== false ? loadDevelopmentEnv(options.cwd, base) : { ...base };
  const secrets = secretsOf(env);
  const out = options.out ?? ((text: string) => process.stdout.write(`${text}\n`));
  const err = options.err ?? ((text: string) => process.stderr.write(`${text}\n`));
  let target: SetupTarget | undefined;
  try {
    target = resolveTarget(env, options.mode);
    const result = await setup({ mode: options.mode, env });
    out(redact(formatSetupReport(result, options.mode), secrets));
    return 0;
  } catch (error) {
    err(redact(formatSetupError(error, options.mode, target), secrets));
    return 1;
  }
}
