// Text output of the CLI's data commands. --json prints the same objects as they are.
import type { CatalogPlan } from './catalog.ts';
import type { Status } from './status.ts';

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const money = (cents: number) => `$${(cents / 100).toFixed(2)}`;
const limit = (n: number, unit: string) => (n < 0 ? 'unlimited' : `${n} ${unit}`);

export function formatPlans(plans: CatalogPlan[]): string {
  if (plans.length === 0) return 'No plans. Run `figma-plugin-auth-db setup` to seed them.';
  return table(
    ['SLUG', 'NAME', 'PRICE/MONTH', 'RESIZES', 'BATCH', 'ACTIVE', 'STRIPE PRODUCT', 'STRIPE PRICE'],
    plans.map((p) => [
      p.slug,
      p.name,
      money(p.priceMonthly),
      p.limits.resizesPerDay < 0 ? 'unlimited' : `${p.limits.resizesPerDay} ${p.limits.isDaily ? 'per day' : 'in total'}`,
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
  ].join('\n');
}
