// Text output of the CLI's data commands. --json prints the same objects as they are.
import type { CatalogPlan } from '../schema/catalog.ts';
import type { Status } from '../schema/status.ts';
import type { PlanLimits } from '../billing/plans.ts';
import type { SubscriptionStatus } from '../billing/subscriptions.ts';
import type { TokenInfo } from '../tokens/tokens.ts';
import type { UsageAnswer, UsageSummaryDay } from '../usage/usage.ts';
import type { UsageDenial, UsageTotal } from '../usage/report.ts';
import type { UserRef } from '../core/users.ts';
import type { PlanSource } from '../billing/sources.ts';

/** What `usage <user>` shows (and prints as JSON). */
export interface UserUsage {
  user: UserRef;
  plan: { slug: string; source: PlanSource; status: SubscriptionStatus | null; limits: PlanLimits };
  /** check_usage's answer now, per action used today (resize always). */
  today: (Pick<UsageAnswer, 'used' | 'usageLimit' | 'remaining' | 'resetsAt' | 'reason'> & { action: string; nextAllowed: boolean })[];
  lifetime: UsageTotal[];
  recentDenials: UsageDenial[];
  last30Days: UsageSummaryDay[];
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** A price in cents as dollars: 900 → $9.00. */
export const money = (cents: number) => `$${(cents / 100).toFixed(2)}`;
const limit = (n: number, unit: string) => (n < 0 ? 'unlimited' : `${n} ${unit}`);
const per = (limits: PlanLimits) => (limits.isDaily ? 'per day' : 'in total');

/** A plan's limits in a sentence: "25 resizes per day, batch size 5"; -1 reads as unlimited. */
export function formatLimits(limits: PlanLimits): string {
  const resizes = limits.resizesPerDay < 0 ? 'unlimited resizes' : `${limits.resizesPerDay} resizes ${per(limits)}`;
  const batch = limits.batchSize < 0 ? 'any batch size' : `batch size ${limits.batchSize}`;
  return `${resizes}, ${batch}`;
}

export function formatPlans(plans: CatalogPlan[]): string {
  if (plans.length === 0) return 'No plans. Run `figma-plugin-auth-db setup` to seed them.';
  return table(
    ['SLUG', 'NAME', 'PRICE/MONTH', 'RESIZES', 'BATCH', 'ACTIVE', 'STRIPE PRODUCT', 'STRIPE PRICE'],
    plans.map((p) => [
      p.slug,
      p.name,
      money(p.priceMonthly),
      limit(p.limits.resizesPerDay, per(p.limits)),
      limit(p.limits.batchSize, p.limits.batchSize === 1 ? 'layer' : 'layers'),
      p.isActive ? 'yes' : 'no',
      p.stripeProductId ?? '-',
      p.stripePriceId ?? '-',
    ]),
  );
}

const ACTIVITY_LABELS: Record<keyof Status['lastActivity'], string> = {
  usageEvent: 'last metered request (plugin_usage.created_at)',
  tokenIssued: 'last token issued (plugin_tokens.created_at)',
  tokenUsed: 'last token used (plugin_tokens.last_used_at)',
  subscriptionChanged: 'last subscription change (user_subscriptions.updated_at)',
};

export function formatStatus(status: Status): string {
  const { schema } = status;
  const version = schema.installed === 0
    ? `not set up (this package installs version ${schema.package}): run figma-plugin-auth-db setup`
    : schema.upToDate
      ? `${schema.installed} (up to date)`
      : `${schema.installed} (this package installs ${schema.package}: run figma-plugin-auth-db setup)`;
  return [
    `Target:          ${status.target}`,
    `Server:          PostgreSQL ${status.serverVersion}, database ${status.database}`,
    `Schema version:  ${version}`,
    '',
    'Migrations:',
    table(['VERSION', 'NAME', 'APPLIED AT'], status.migrations.map((m) => [String(m.version), m.name, m.appliedAt])),
    '',
    'Plans:',
    formatPlans(status.plans),
    '',
    'Rows:',
    table(['TABLE', 'ROWS'], Object.entries(status.rowCounts).map(([name, n]) => [name, String(n)])),
    '',
    'Last activity:',
    ...Object.entries(status.lastActivity).map(
      ([key, at]) => `  ${ACTIVITY_LABELS[key as keyof Status['lastActivity']]}: ${at ?? 'never'}`,
    ),
    ...(status.warnings.length ? ['', 'Warnings:', ...status.warnings.map((w) => `  ⚠ ${w}`)] : []),
  ].join('\n');
}

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : '-');
const orUnlimited = (n: number | null) => (n === null ? 'unlimited' : String(n));

export function formatUsage(report: UserUsage): string {
  const { user, plan } = report;
  const none = (rows: unknown[], text: string) => (rows.length ? [] : [`  ${text}`]);
  return [
    `User:  ${user.email} (${user.id})`,
    `Plan:  ${plan.slug} (${plan.source}${plan.status ? `, subscription ${plan.status}` : ''}): ${formatLimits(plan.limits)}`,
    '',
    'Today (UTC; what check_usage answers now):',
    table(['ACTION', 'USED', 'LIMIT', 'REMAINING', 'RESETS AT', 'NEXT CALL'],
      report.today.map((t) => [t.action, String(t.used), orUnlimited(t.usageLimit), orUnlimited(t.remaining), t.resetsAt ? iso(t.resetsAt) : 'never', t.nextAllowed ? 'allowed' : `denied (${t.reason})`])),
    '',
    'Lifetime:',
    ...(report.lifetime.length
      ? [table(['ACTION', 'USED', 'ALLOWED', 'DENIED', 'REFUNDED'],
          report.lifetime.map((t) => [t.action, String(t.used), String(t.allowed), String(t.denied), String(t.refunded)]))]
      : none(report.lifetime, 'no usage yet')),
    '',
    'Last denials (newest first):',
    ...(report.recentDenials.length
      ? [table(['AT', 'ACTION', 'ITEMS', 'REASON', 'PLAN', 'USED', 'LIMIT', 'BATCH LIMIT'],
          report.recentDenials.map((d) => [iso(d.at), d.action, String(d.items), d.reason, d.planSlug ?? '-', String(d.used ?? '-'), orUnlimited(d.usageLimit), orUnlimited(d.batchLimit)]))]
      : none(report.recentDenials, 'none')),
    '',
    'Last 30 days (usage.summary):',
    ...(report.last30Days.length
      ? [table(['DATE', 'ACTION', 'USED', 'ALLOWED', 'DENIED', 'REFUNDED'],
          report.last30Days.map((d) => [d.date, d.action, String(d.used), String(d.allowed), String(d.denied), String(d.refunded)]))]
      : none(report.last30Days, 'no usage')),
  ].join('\n');
}

export function formatTokens(view: { user: UserRef; tokens: TokenInfo[] }): string {
  const head = `Tokens of ${view.user.email} (${view.user.id}), newest first:`;
  if (view.tokens.length === 0) return `${head}\n  none`;
  return [
    head,
    table(['TOKEN ID', 'DEVICE', 'STATUS', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED', 'REASON'],
      view.tokens.map((t) => [t.tokenId, t.deviceName ?? '-', t.status, iso(t.createdAt), iso(t.expiresAt), iso(t.lastUsedAt), iso(t.revokedAt), t.revokedReason ?? '-'])),
  ].join('\n');
}
