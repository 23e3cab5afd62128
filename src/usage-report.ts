// usage report: calls per UTC day and action across all users, what an admin dashboard charts.
// Reads public.usage_report (sql/011_growth.sql): a rollup table plus the last few minutes of
// calls, so its cost does not grow with plugin_usage.
import type { Queryable } from './db.ts';
import { ValidationError, fromDatabaseError } from './errors.ts';

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
  const days = options.days ?? 30;
  if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > 366) {
    throw new ValidationError('invalid_days', 'invalid_days: days must be an integer from 1 to 366');
  }
  try {
    const rows = await db.query<{ usage_date: string; action: string; allowed: number; denied: number }>(
      'SELECT * FROM public.usage_report($1)',
      [days],
    );
    return rows.map((r) => ({ date: r.usage_date, action: r.action, allowed: r.allowed, denied: r.denied }));
  } catch (error) {
    throw fromDatabaseError(error);
  }
}
