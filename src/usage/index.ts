// usage/: exact metering. usage (consume / check / refund / summary: typed calls of the SQL
// functions that hold every rule, so supabase.rpc callers get the same answers), report (the
// rollups read back: per day and action, a user's denials and totals), retention (purging old
// calls in short batches without touching the counters that are the limits).
export { createUsage, type Usage, type UsageAnswer, type UsageReason, type UsageSummaryDay, type ConsumeOptions, type CheckOptions, type SummaryOptions, type RefundResult } from './usage.ts';
export { usageReport, createUsageReport, type ReportOptions, type UsageReportDay, type UsageReport, type UsageDenial, type UsageTotal } from './report.ts';
export { purgeUsage, parseAge, type PurgeOptions, type PurgeResult } from './retention.ts';
