// usage.consume / check / refund / summary: typed calls of the SQL functions in
// sql/006_usage_metering.sql, which hold all the rules (so rpc callers get the same behaviour).
// One call is one statement, so one round trip and one transaction. consume's common case is sent
// as one plain statement where statements stay prepared (./common-consume.ts: same answer, same
// writes, without the cost of the function call); anything else is the function's.
import { withTypedErrors, type Database, type Queryable } from '../core/queryable.ts';
import { sqlState } from '../core/errors.ts';
import * as input from '../core/validation.ts';
import { COMMON_CONSUME } from './common-consume.ts';

export type UsageReason = 'ok' | 'limit_reached' | 'batch_too_large';

/** The answer of consume and check. null limits mean unlimited; resetsAt null means never. */
export interface UsageAnswer {
  allowed: boolean;
  reason: UsageReason;
  planSlug: string;
  /** The count after this call (unchanged when denied): today's for daily plans, all-time otherwise. */
  used: number;
  usageLimit: number | null;
  remaining: number | null;
  batchLimit: number | null;
  resetsAt: Date | null;
  /** true when this is the stored answer of an earlier call with the same idempotency key. */
  replayed: boolean;
}

export interface ConsumeOptions {
  /** Batch size (layers), 1 to 10000 (MAX_ITEMS); default 1. Counts as one operation. */
  items?: number;
  /** Same key, same answer: a retried request is counted once. 1 to 255 characters. */
  idempotencyKey?: string | null;
  /** Logged with the call: a JSON object, at most 16 kB. */
  metadata?: Record<string, unknown> | null;
}

export interface CheckOptions {
  items?: number;
}

export interface RefundResult {
  /** true when this call gave the operation back; false when already refunded or it was denied. */
  refunded: boolean;
}

export interface SummaryOptions {
  /** First UTC day, 'YYYY-MM-DD' or a Date; default 29 days before `to`. */
  from?: string | Date;
  /** Last UTC day, inclusive; default today (UTC). */
  to?: string | Date;
}

export interface UsageSummaryDay {
  /** UTC day, 'YYYY-MM-DD'. */
  date: string;
  action: string;
  /** The counter: allowed minus refunded. */
  used: number;
  allowed: number;
  denied: number;
  refunded: number;
}

interface AnswerRow {
  allowed: boolean;
  reason: UsageReason;
  plan_slug: string;
  used: number;
  usage_limit: number | null;
  remaining: number | null;
  batch_limit: number | null;
  resets_at: Date | null;
  replayed: boolean;
}

interface SummaryRow {
  usage_date: string;
  action: string;
  used: number;
  allowed: number;
  denied: number;
  refunded: number;
}

const toAnswer = (r: AnswerRow): UsageAnswer => ({
  allowed: r.allowed,
  reason: r.reason,
  planSlug: r.plan_slug,
  used: r.used,
  usageLimit: r.usage_limit,
  remaining: r.remaining,
  batchLimit: r.batch_limit,
  resetsAt: r.resets_at,
  replayed: r.replayed,
});

/**
 * The metering calls with inputs already checked where they entered: createUsage's methods below
 * (the public door), entitlements.snapshot (which checks its user id itself), and the server's
 * metering path, whose user id is a verified token's, read back from the database as a uuid.
 * Internal: not exported from the package root. SQL checks every value again (the last line, for
 * supabase.rpc callers), so a caller that skips a check gets a typed error, never a wrong count.
 * One exception: consume's common statement leaves the characters of the action to the caller's
 * check (its length, items and metadata it tests, and declines to the function).
 */
export function usageCalls(db: Queryable) {
  // The common statement needs the library's tables in this database and a plan kept per
  // connection (parsed and planned on every call it would cost more than the function call): not
  // on a pooler in transaction mode, inside a caller's transaction on PGlite, or on a sharded
  // layout's proxy database, whose functions route to the user's partition (sql/plproxy/).
  let common = (db as Partial<Database>).prepares === true;
  db = withTypedErrors(db);
  return {
    async consume(userId: string, action: string, items: number, idempotencyKey: string | null, metadataJson: string | null): Promise<UsageAnswer> {
      if (common && idempotencyKey === null) {
        try {
          const rows = await db.query<AnswerRow>(COMMON_CONSUME, [userId, action, items, metadataJson], { prepare: 'fpa_consume_common' });
          if (rows[0]) return toAnswer(rows[0]);
        } catch (error) {
          // undefined_table: not a database of this library's tables (a proxy); never again here.
          if (sqlState(error) !== '42P01') throw error;
          common = false;
        }
      }
      const rows = await db.query<AnswerRow>(
        'SELECT * FROM public.consume_usage($1::uuid, $2::varchar, $3::integer, $4::text, $5::jsonb)',
        [userId, action, items, idempotencyKey, metadataJson],
        { prepare: 'fpa_consume_usage' },
      );
      return toAnswer(rows[0]!);
    },
    async check(userId: string, action: string, items: number): Promise<UsageAnswer> {
      const rows = await db.query<AnswerRow>('SELECT * FROM public.check_usage($1::uuid, $2::varchar, $3::integer)', [userId, action, items], { prepare: 'fpa_check_usage' });
      return toAnswer(rows[0]!);
    },
  };
}

export function createUsage(db: Queryable) {
  db = withTypedErrors(db);
  const calls = usageCalls(db);
  return {
    /** Counts one operation if the plan allows it; logs the call either way. */
    async consume(userId: string, action: string, options: ConsumeOptions = {}): Promise<UsageAnswer> {
      return calls.consume(
        input.userId(userId),
        input.action(action),
        input.items(options.items),
        input.idempotencyKey(options.idempotencyKey, false),
        input.metadata(options.metadata),
      );
    },

    /** What consume would answer now, writing nothing. Only consume's answer is binding. */
    async check(userId: string, action: string, options: CheckOptions = {}): Promise<UsageAnswer> {
      return calls.check(input.userId(userId), input.action(action), input.items(options.items));
    },

    /** Gives back the operation counted by the consume with this key, at most once. */
    async refund(userId: string, idempotencyKey: string): Promise<RefundResult> {
      const params = [input.userId(userId), input.idempotencyKey(idempotencyKey, true)];
      const rows = await db.query<{ refunded: boolean }>('SELECT public.refund_usage($1::uuid, $2::text) AS refunded', params);
      return { refunded: rows[0]!.refunded };
    },

    /** Per UTC day and action: the counter, and allowed / denied / refunded calls from the log. */
    async summary(userId: string, options: SummaryOptions = {}): Promise<UsageSummaryDay[]> {
      const params = [input.userId(userId), input.day(options.from, 'from'), input.day(options.to, 'to')];
      const rows = await db.query<SummaryRow>('SELECT * FROM public.usage_summary($1::uuid, $2::date, $3::date)', params);
      return rows.map((r) => ({
        date: r.usage_date,
        action: r.action,
        used: r.used,
        allowed: r.allowed,
        denied: r.denied,
        refunded: r.refunded,
      }));
    },
  };
}

export type Usage = ReturnType<typeof createUsage>;
