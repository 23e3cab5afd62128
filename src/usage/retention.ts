// Retention: deletes old plugin_usage rows (the call log) in small batches, each batch its own
// short transaction (public.purge_usage_batch, sql/011_growth.sql), so consumes never wait on it.
// It never deletes daily_usage_summary rows: those counters ARE the limits (the free plan counts
// every day of a user's life). Deleting a call also ends idempotent replay of its key: a retry
// with that key after the purge is counted as a new call.
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { ValidationError, type ErrorCode } from '../core/errors.ts';

export interface PurgeOptions {
  /** Delete calls created before this: a Date, or an age such as '90d' or '36h'. At least 1 day. */
  olderThan: Date | string;
  /** Rows per batch (per transaction), 1 to 100000; default 1000. */
  batchSize?: number;
  /** Stop after this many batches (the rest waits for the next run); default: until done. */
  maxBatches?: number;
  /** Pause between batches, to leave room for traffic, vacuum and replicas; default 0. */
  pauseMs?: number;
  /** Count what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Called after each batch (progress). */
  onBatch?(batch: { deleted: number; total: number; batches: number }): void;
}

export interface PurgeResult {
  /** The cutoff used: calls created before it were deleted. */
  cutoff: Date;
  /** Rows deleted (with dryRun: rows that would be). */
  deleted: number;
  batches: number;
  /** false when maxBatches stopped it early. */
  done: boolean;
  dryRun: boolean;
}

const DAY_MS = 86_400_000;
const AGE = /^(\d{1,6})(d|h)$/;

/** '90d' or '36h' → the Date that long before `now`. */
export function parseAge(age: string, now = new Date()): Date {
  const match = AGE.exec(age.trim());
  if (!match) throw new ValidationError('invalid_cutoff', `invalid_cutoff: give an age such as 90d or 36h, not "${age}"`);
  const ms = Number(match[1]) * (match[2] === 'd' ? DAY_MS : DAY_MS / 24);
  return new Date(now.getTime() - ms);
}

function cutoffOf(olderThan: Date | string): Date {
  const cutoff = typeof olderThan === 'string' ? parseAge(olderThan) : olderThan;
  if (!(cutoff instanceof Date) || Number.isNaN(cutoff.getTime()) || cutoff.getTime() > Date.now() - DAY_MS) {
    throw new ValidationError('invalid_cutoff', 'invalid_cutoff: keep at least the last day of calls (older_than must be at least 1 day ago)');
  }
  return cutoff;
}

function positiveInt(value: unknown, name: string, code: ErrorCode, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(code, `${code}: ${name} must be an integer from 1 to ${max}`);
  }
  return value;
}

/** Deletes plugin_usage rows older than the cutoff, batch by batch. Safe to run while serving. */
export async function purgeUsage(db: Queryable, options: PurgeOptions): Promise<PurgeResult> {
  db = withTypedErrors(db);
  const cutoff = cutoffOf(options.olderThan);
  const batchSize = positiveInt(options.batchSize ?? 1000, 'batch size', 'invalid_batch_size', 100_000);
  const maxBatches = options.maxBatches === undefined ? Infinity : positiveInt(options.maxBatches, 'maxBatches', 'invalid_max_batches', 1e9);
  const pauseMs = options.pauseMs ?? 0;
  if (typeof pauseMs !== 'number' || !Number.isFinite(pauseMs) || pauseMs < 0) {
    throw new ValidationError('invalid_pause', 'invalid_pause: pauseMs must be a number >= 0');
  }
  // Roll up first: a call is only deleted once the report's totals hold it.
  await db.query('SELECT public.usage_rollup()', []);
  if (options.dryRun) {
    const rows = await db.query<{ n: number }>(
      `SELECT count(*)::bigint AS n FROM public.plugin_usage u, public.usage_rollup_state s
        WHERE s.id AND u.created_at < LEAST($1::timestamptz, s.rolled_up_to)`,
      [cutoff],
    );
    return { cutoff, deleted: rows[0]!.n, batches: 0, done: true, dryRun: true };
  }
  let deleted = 0;
  let batches = 0;
  let after: Date | null = null;
  while (batches < maxBatches) {
    const rows: { deleted: number; last_created_at: Date | null }[] = await db.query(
      'SELECT deleted, last_created_at FROM public.purge_usage_batch($1::timestamptz, $2::integer, $3::timestamptz)',
      [cutoff, batchSize, after],
    );
    const batch = rows[0]!;
    if (batch.deleted === 0) return { cutoff, deleted, batches, done: true, dryRun: false };
    deleted += batch.deleted;
    batches++;
    after = batch.last_created_at;
    options.onBatch?.({ deleted: batch.deleted, total: deleted, batches });
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return { cutoff, deleted, batches, done: false, dryRun: false };
}
