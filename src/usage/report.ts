// Read-only views of metering for operators and dashboards: a user's recent denials and all-time
// totals (the CLI's `usage` command), and calls per UTC day and action across all users
// (usageReport, from the rollup in sql/011_growth.sql, so its cost does not grow with plugin_usage).
// Metering itself lives in usage.ts / sql/006.
import { withTypedErrors, type Queryable } from '../core/queryable.ts';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import type { UsageReason } from './usage.ts';
import * as input from '../core/validation.ts';

/** One denied call, as plugin_usage logged it. */
export interface UsageDenial {
  at: Date;
  action: string;
  /** Batch size asked for. */
  items: number;
  reason: Exclude<UsageReason, 'ok'>;
  planSlug: string | null;
  used: number | null;
  usageLimit: number | null;
  batchLimit: number | null;
}

/** All-time totals of one action: the counter, and the calls in the log. */
export interface UsageTotal {
  action: string;
  /** Sum of the daily counters: allowed minus refunded. */
  used: number;
  allowed: number;
  denied: number;
  refunded: number;
}

/** A malformed id is invalid_user_id (before the database); a well-formed one nobody has, unknown_user. */
async function knownUser(db: Pick<Queryable, 'query'>, userId: unknown): Promise<string> {
  const id = input.userId(userId);
  const rows = await db.query<{ id: string }>('SELECT id FROM public.users WHERE id = $1::uuid', [id]);
  if (rows.length === 0) throw new NotFoundError('unknown_user', `unknown_user: no user with id ${id}`);
  return id;
}

export function createUsageReport(db: Pick<Queryable, 'query'>) {
  db = withTypedErrors(db);
  return {
    /** The user's latest denied calls, newest first (default 10, at most 1000). Errors: invalid_user_id, unknown_user, invalid_limit. */
    async recentDenials(userId: string, { limit = 10 }: { limit?: number } = {}): Promise<UsageDenial[]> {
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new ValidationError('invalid_limit', 'invalid_limit: limit must be a whole number from 1 to 1000');
      }
      const id = await knownUser(db, userId);
      // idx_plugin_usage_user_id (user_id, created_at) serves this, read backwards.
      const rows = await db.query<{
        created_at: Date; action: string; items: number; reason: UsageDenial['reason']; plan_slug: string | null;
        used: number | null; usage_limit: number | null; batch_limit: number | null;
      }>(
        `SELECT created_at, action, items, reason, plan_slug, used, usage_limit, batch_limit
           FROM public.plugin_usage
          WHERE user_id = $1::uuid AND NOT allowed
          ORDER BY created_at DESC, id DESC
          LIMIT $2::integer`,
        [id, limit],
      );
      return rows.map((r) => ({
        at: r.created_at,
        action: r.action,
        items: r.items,
        reason: r.reason,
        planSlug: r.plan_slug,
        used: r.used,
        usageLimit: r.usage_limit,
        batchLimit: r.batch_limit,
      }));
    },

    /** Per action, over all time: the counters' sum and the allowed / denied / refunded calls. Errors: invalid_user_id, unknown_user. */
    async lifetime(userId: string): Promise<UsageTotal[]> {
      const id = await knownUser(db, userId);
      const rows = await db.query<UsageTotal>(
        `SELECT action, sum(used)::int AS used, sum(allowed)::int AS allowed,
                sum(denied)::int AS denied, sum(refunded)::int AS refunded
           FROM (SELECT action, count AS used, 0 AS allowed, 0 AS denied, 0 AS refunded
                   FROM public.daily_usage_summary WHERE user_id = $1::uuid
                 UNION ALL
                 SELECT action, 0, allowed::int, (NOT allowed)::int, (refunded_at IS NOT NULL)::int
                   FROM public.plugin_usage WHERE user_id = $1::uuid) t
          GROUP BY action
          ORDER BY action`,
        [id],
      );
      return rows.map((r) => ({ action: r.action, used: r.used, allowed: r.allowed, denied: r.denied, refunded: r.refunded }));
    },
  };
}

export type UsageReport = ReturnType<typeof createUsageReport>;

export interface ReportOptions {
  /** How many UTC days up to today (included); 1 to 366, default 30. */
  days?: number;
}

export interface UsageReportDay {
  /** UTC day, 'YYYY-MM-DD'. */
  date: string;
  action: string;
  /** Calls allowed that day (refunded ones included: usage.summary shows refunds per user). */
  allowed: number;
  /** Calls denied (limit reached or batch too large). */
  denied: number;
}

/** Per UTC day and action, oldest first; days without calls are left out. */
export async function usageReport(db: Queryable, options: ReportOptions = {}): Promise<UsageReportDay[]> {
  db = withTypedErrors(db);
  const days = options.days ?? 30;
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > 366) {
    throw new ValidationError('invalid_days', 'invalid_days: days must be an integer from 1 to 366');
  }
  const rows = await db.query<{ usage_date: string; action: string; allowed: number; denied: number }>(
    'SELECT * FROM public.usage_report($1::integer)',
    [days],
  );
  return rows.map((r) => ({ date: r.usage_date, action: r.action, allowed: r.allowed, denied: r.denied }));
}
