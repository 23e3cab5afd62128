// What every command is made of: the option table (one name, one meaning, for all commands), the
// Command declaration, the Context a command's function gets, and UsageError. Both cli.ts and the
// command groups in commands/ import this file; it imports neither.
import type { Env } from '../core/env.ts';
import type { Connection } from './target.ts';

export const BIN = 'figma-plugin-auth-db';

/** Where the CLI reads and writes; tests and embedders pass their own. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Env;
  cwd: string;
}

/** Every option any command accepts, declared once so that one name always means one thing. */
export const OPTIONS = {
  help: { type: 'boolean', short: 'h', text: 'show this help' },
  version: { type: 'boolean', text: 'print the package version' },
  alg: { type: 'string', text: 'keygen: the signature algorithm, ES256 (default) or EdDSA' },
  json: { type: 'boolean', text: 'print the result as JSON' },
  'database-url': { type: 'string', text: 'postgres://… or pglite:<dir> (default: the environment, as setup)' },
  production: { type: 'boolean', text: 'read only the environment (no .env files) and never the embedded database' },
  'dry-run': { type: 'boolean', text: 'setup: print the exact SQL it would run, connect to nothing; retention: count, delete nothing; stripe reconcile: report, write nothing' },
  'supabase-auth-users': { type: 'boolean', text: 'setup: also install the opt-in Supabase user sync (a users row for each auth.users row, by trigger; docs/sign-in.md)' },
  product: { type: 'string', text: 'Stripe product id, prod_… (with --license: the store\'s product id)' },
  license: { type: 'string', text: 'plans link: the store whose license keys grant the plan, lemonsqueezy or gumroad (with --product)' },
  variant: { type: 'string', text: 'plans link --license: only this variant of the product (Lemon Squeezy variant id)' },
  devices: { type: 'string', text: 'plans link: at most this many devices per license (1 to 1000); with --license for that product, alone for the plan (none: no cap)' },
  seats: { type: 'string', text: 'plans link --license: each license is a team license of this many seats (1 to 100000)' },
  interval: { type: 'string', text: 'plans link --license lemonsqueezy: the subscription variant\'s renewal interval, day, week, month or year (for the console\'s MRR; none: one-time)' },
  'interval-count': { type: 'string', text: 'plans link --license lemonsqueezy --interval: billed every this many intervals (1 to 365, default 1)' },
  price: { type: 'string', text: 'Stripe price id, price_…' },
  figma: { type: 'string', text: 'plans link: the Figma payment status the plan is granted for, PAID, TRIAL or FIRST_USE (a server-side trial)' },
  'trial-days': { type: 'string', text: 'plans link --figma FIRST_USE: how many days from a Figma user\'s first sign-in (1 to 3650)' },
  'older-than': { type: 'string', text: 'an age: 90d (days) or 36h (hours); at least 1 day' },
  'batch-size': { type: 'string', text: 'rows per batch, each its own short transaction (default 1000)' },
  denials: { type: 'string', text: 'how many recent denials to show, 1 to 1000 (default 10)' },
  reason: { type: 'string', text: 'why, kept with the revoked token (default: revoked_by_operator)' },
  port: { type: 'string', text: 'dashboard: the port to listen on (default 7300; 0 = any free port)' },
  host: { type: 'string', text: 'dashboard: the address to listen on (default a random loopback address 127.x.y.z, new each start: this machine only, and no cookie shared with other local servers)' },
  open: { type: 'boolean', text: 'dashboard: open the URL in the default browser' },
  user: { type: 'string', text: 'stripe reconcile: only this user\'s subscriptions (id or email)' },
  customer: { type: 'string', text: 'stripe reconcile: only this Stripe customer\'s subscriptions (cus_…)' },
} as const;
export type OptionName = keyof typeof OPTIONS;
export type Values = { [K in OptionName]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** Added to every command that `connects`. */
export const TARGET_OPTIONS: OptionName[] = ['database-url', 'production'];

/** What a command's function gets: its parsed input and the ways to reach the target and print. */
export interface Context {
  values: Values;
  /** Positional arguments after the command words. */
  args: string[];
  io: CliIo;
  /** Opens the target once (closed by the CLI after the command); `.database()` for SQL access. */
  connect(): Promise<Connection>;
  /** Prints data: as JSON with --json, else as the text `format` makes of it. */
  print<T>(data: T, format: (data: T) => string): void;
  out(text: string): void;
}

export interface Command {
  /** One or two words: "status", "plans link", "tokens revoke". */
  name: string;
  /** Positional arguments, e.g. ["<slug>"] or ["[dir]"]: <required>, [optional]. */
  args?: string[];
  summary: string;
  /** Options beyond --help; target options are added by `connects`. */
  options?: OptionName[];
  /** Reads or writes the database: accepts --database-url and --production. */
  connects?: boolean;
  examples: string[];
  run(ctx: Context): Promise<number>;
}

/** A mistake in how the CLI was called: usage on stderr, exit 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: Command) {
    super(message);
  }
}
