// figma-plugin-auth-db: the command line. Thin by design: parse, call the library, print, return
// an exit code (0 ok, 1 failed or differences found, 2 usage error). Only the entry points
// (bin/figma-plugin-auth-db.js, src/cli/main.ts) touch process.exitCode.
// Each command loads what it needs beyond its declaration when it runs (a dynamic import), so that
// starting one command, `serve` above all, does not load every other's modules.
// This file: main(), the command list, parsing and help. The option table and the Command and
// Context types are in context.ts; each command group's commands are in commands/.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Connection } from './target.ts';
import { loadDevelopmentEnv } from '../core/env.ts';
import { PluginAuthError } from '../core/errors.ts';
import { redact, secretsOf } from '../core/redact.ts';
import { BIN, OPTIONS, TARGET_OPTIONS, UsageError, type CliIo, type Command, type Context, type OptionName, type Values } from './context.ts';
import { diagramCommand, exportSupabaseCommand, setupCommand, statusCommand, verifyCommand } from './commands/schema.ts';
import { plansCommand, plansLinkCommand } from './commands/plans.ts';
import { retentionCommand, usageCommand } from './commands/usage.ts';
import { tokensListCommand, tokensRevokeAllCommand, tokensRevokeCommand } from './commands/tokens.ts';
import { dashboardCommand } from './commands/dashboard.ts';
import { serveCommand } from './commands/serve.ts';
import { keygenCommand } from './commands/keygen.ts';
import { stripeReconcileCommand } from './commands/stripe.ts';

export { BIN, type CliIo, type Command, type Context } from './context.ts';

// Every command, in the order help lists them. Adding one (e.g. `usage <user>`, `tokens revoke
// <user>`) is one declaration in its group's file under commands/ (call the library through
// ctx.connect(), print with ctx.print) and its place here.
export const COMMANDS: Command[] = [
  setupCommand,
  verifyCommand,
  statusCommand,
  plansCommand,
  plansLinkCommand,
  usageCommand,
  tokensListCommand,
  tokensRevokeCommand,
  tokensRevokeAllCommand,
  diagramCommand,
  exportSupabaseCommand,
  retentionCommand,
  dashboardCommand,
  serveCommand,
  keygenCommand,
  stripeReconcileCommand,
];

/** Runs the CLI and returns the exit code. Never exits the process itself. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  // Whatever is printed, success or failure, passes through redact() with every secret configured.
  const secrets = [...secretsOf(io.env), ...secretsOf(loadDevelopmentEnv(io.cwd, {})), ...urlSecrets(argv)];
  const safe: CliIo = { ...io, stdout: (t) => io.stdout(redact(t, secrets)), stderr: (t) => io.stderr(redact(t, secrets)) };
  let command: Command | undefined;
  let connection: Connection | undefined;
  try {
    const parsed = parse(argv);
    command = parsed.command;
    if (parsed.text !== undefined) {
      safe.stdout(`${parsed.text}\n`);
      return 0;
    }
    if (!command) {
      safe.stdout(`${mainHelp()}\n`);
      return 0;
    }
    if (parsed.values.help) {
      safe.stdout(`${commandHelp(command)}\n`);
      return 0;
    }
    const values = parsed.values;
    const ctx: Context = {
      values,
      args: parsed.args,
      io: safe,
      out: (text) => safe.stdout(`${text}\n`),
      print: (data, format) => safe.stdout(`${values.json ? JSON.stringify(data, null, 2) : format(data)}\n`),
      connect: async () => {
        if (connection) return connection;
        const mode = values.production ? 'production' : 'development';
        const env = values.production ? io.env : loadDevelopmentEnv(io.cwd, io.env);
        const { connect, resolveCliTarget } = await import('./target.ts');
        connection = await connect(resolveCliTarget(values['database-url'], env, mode));
        return connection;
      },
    };
    return await command.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) {
      command ??= error.command;
      safe.stderr(`${BIN}: ${error.message}\n\n${command ? usageLine(command) : mainUsage()}\nRun \`${BIN} ${command ? `${command.name} ` : ''}--help\` for more.\n`);
      return 2;
    }
    const code = error instanceof PluginAuthError ? ` [${error.code}]` : '';
    safe.stderr(`${BIN}${command ? ` ${command.name}` : ''}: error${code}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    await connection?.close().catch(() => {});
  }
}

function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
  };
}

/** A password given on the command line is a secret too, even in a URL we failed to parse. */
function urlSecrets(argv: string[]): string[] {
  return argv.flatMap((arg) => {
    const match = /^(?:--database-url=)?[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:([^\s@/]+)@/i.exec(arg);
    return match ? [match[1]!, decodeURIComponentSafe(match[1]!)] : [];
  });
}
const decodeURIComponentSafe = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

const optionsOf = (command: Command): OptionName[] => ['help', ...(command.options ?? []), ...(command.connects ? TARGET_OPTIONS : [])];

/** What parse found: a command to run, or (`text`) help or the version to print with exit 0. */
interface Parsed {
  command?: Command;
  values: Values;
  args: string[];
  text?: string;
}

function parse(argv: string[]): Parsed {
  // First pass, lenient and with every option known: where are the command words?
  const loose = parseArgs({ args: argv, options: spec(Object.keys(OPTIONS) as OptionName[]), strict: false, allowPositionals: true });
  const words = loose.positionals;
  if (words[0] === 'help') return help(words.slice(1));
  const command = COMMANDS.find((c) => c.name === words.slice(0, 2).join(' ')) ?? COMMANDS.find((c) => c.name === words[0]);
  if (!command) {
    if (loose.values.version && words.length === 0) return { values: {}, args: [], text: version() };
    if (loose.values.help && words.length === 0) return { values: {}, args: [] };
    if (words.length === 0) throw new UsageError('no command given');
    const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `));
    // `tokens --help`: the group's commands, like `help tokens`.
    if (group.length && loose.values.help) return { values: {}, args: [], text: groupHelp(words[0]!, group) };
    throw new UsageError(group.length ? `"${words[0]}" needs a subcommand: ${group.map((c) => c.name).join(', ')}` : `unknown command "${words[0]}"`);
  }
  let strict;
  try {
    strict = parseArgs({ args: argv, options: spec(optionsOf(command)), strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${command.name}: ${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`, command);
  }
  const args = strict.positionals.slice(command.name.split(' ').length);
  const declared = command.args ?? [];
  const required = declared.filter((a) => a.startsWith('<')).length;
  if (!strict.values.help && args.length < required) throw new UsageError(`${command.name}: missing ${declared[args.length]}`, command);
  if (args.length > declared.length) throw new UsageError(`${command.name}: unexpected argument "${args[declared.length]}"`, command);
  return { command, values: strict.values as Values, args };
}

/** `help`, `help status`, `help plans link`, `help tokens` (a group: its commands). */
function help(words: string[]): Parsed {
  if (words.length === 0) return { values: {}, args: [] };
  const command = COMMANDS.find((c) => c.name === words.join(' ')) ?? COMMANDS.find((c) => c.name === words[0]);
  if (command) return { command, values: { help: true }, args: [] };
  const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `));
  if (group.length) return { values: {}, args: [], text: groupHelp(words[0]!, group) };
  throw new UsageError(`unknown command "${words.join(' ')}"`);
}

/** The package's version, from its package.json (two folders up from src/cli/ and dist/cli/ alike). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}

function groupHelp(word: string, group: Command[]): string {
  const width = Math.max(...group.map((c) => `${c.name} ${c.args?.join(' ') ?? ''}`.length));
  return [
    `${BIN} ${word}: ${group.length} commands`,
    '',
    ...group.map((c) => `  ${`${c.name} ${c.args?.join(' ') ?? ''}`.padEnd(width)}  ${c.summary}`),
    '',
    `Run \`${BIN} ${group[0]!.name} --help\` (or \`${BIN} help ${group[0]!.name}\`) for a command's options and examples.`,
  ].join('\n');
}

function spec(names: OptionName[]) {
  return Object.fromEntries(
    names.map((name) => {
      const o = OPTIONS[name];
      return [name, 'short' in o ? { type: o.type, short: o.short } : { type: o.type }];
    }),
  ) as Record<string, { type: 'string' | 'boolean'; short?: string }>;
}

const usageLine = (c: Command) =>
  `Usage: ${BIN} ${c.name}${c.args?.length ? ` ${c.args.join(' ')}` : ''}${optionsOf(c).length > 1 ? ' [options]' : ''}`;

function mainUsage(): string {
  return `Usage: ${BIN} <command> [options]\nCommands: ${COMMANDS.map((c) => c.name).join(', ')}`;
}

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args?.join(' ') ?? ''}`.length));
  return [
    `${BIN}: set up, check and operate the database of a paid Figma plugin.`,
    '',
    `Usage: ${BIN} <command> [options]`,
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${`${c.name} ${c.args?.join(' ') ?? ''}`.padEnd(width)}  ${c.summary}`),
    '',
    'Target (commands that connect): --database-url, else DATABASE_URL, else SUPABASE_URL +',
    'SUPABASE_SERVICE_ROLE_KEY, else embedded PGlite in ./.data/pglite (PGLITE_DATA_DIR). Without',
    '--production, .env.local and .env are read first (real environment variables win).',
    '',
    'Exit codes: 0 ok, 1 failed (or verify found differences), 2 usage error.',
    '',
    'Examples:',
    `  ${BIN} setup && ${BIN} verify`,
    `  ${BIN} status --json`,
    `  ${BIN} plans link pro --product prod_Pro123 --price price_Pro123`,
    `  ${BIN} usage ada@example.com`,
    `  ${BIN} tokens revoke-all ada@example.com`,
    `  ${BIN} dashboard --open`,
    `  METER=/plugin/resize=resize:layers ${BIN} serve`,
    `  ${BIN} keygen > entitlement-key.jwk`,
    '',
    `Run \`${BIN} <command> --help\` (or \`${BIN} help <command>\`) for a command's options and examples;`,
    `\`${BIN} --version\` prints the version.`,
  ].join('\n');
}

function commandHelp(command: Command): string {
  const options = optionsOf(command);
  const flag = (name: OptionName) => `${'short' in OPTIONS[name] ? `-${(OPTIONS[name] as { short: string }).short}, ` : ''}--${name}${OPTIONS[name].type === 'string' ? ' <value>' : ''}`;
  const width = Math.max(...options.map((name) => flag(name).length));
  return [
    `${BIN} ${command.name}: ${command.summary}`,
    '',
    usageLine(command),
    '',
    'Options:',
    ...options.map((name) => `  ${flag(name).padEnd(width)}  ${OPTIONS[name].text}`),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
    'Exit codes: 0 ok, 1 failed' + (command.name === 'verify' ? ' or differences found' : '') + ', 2 usage error.',
  ].join('\n');
}
