// The dashboard's HTML: one overview page, one page per user, the revoke confirmation. Every
// chart is followed by the table of its numbers (what screen readers and the tests read).
import type { Overview, PlanInfo, UserView } from './queries.ts';
import { RANGES } from './queries.ts';
import {
  escapeHtml as h,
  formatNumber,
  funnelChart,
  groupedBarChart,
  horizontalBarChart,
  inlineBar,
  lineChart,
  shortDate,
  stackedBarChart,
  type Series,
} from './svg.ts';

export const CSS = `
:root { color-scheme: light; --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f5f6f8; --card: #fff; --accent: #4f46e5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; padding: 14px 24px; background: #111827; color: #f9fafb; }
header.top h1 { font-size: 16px; margin: 0; font-weight: 600; letter-spacing: .01em; }
header.top .meta { color: #9ca3af; font-size: 12px; }
header.top a { color: #c7d2fe; }
nav.range { margin-left: auto; display: flex; gap: 4px; }
nav.range a { padding: 4px 10px; border-radius: 6px; color: #e5e7eb; border: 1px solid #374151; font-size: 13px; }
nav.range a[aria-current="page"] { background: #f9fafb; color: #111827; border-color: #f9fafb; font-weight: 600; }
main { padding: 20px 24px 40px; max-width: 1400px; margin: 0 auto; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin-bottom: 16px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.kpi .label { color: var(--muted); font-size: 12px; }
.kpi .value { font-size: 24px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.kpi .sub { color: var(--muted); font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; align-items: start; }
section.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px 12px; min-width: 0; }
section.card.wide { grid-column: 1 / -1; }
section.card h2 { font-size: 14px; margin: 0 0 2px; font-weight: 600; }
section.card p.def { margin: 0 0 8px; color: var(--muted); font-size: 12px; }
.chart-svg { width: 100%; height: auto; display: block; }
.chart-svg text { font-family: inherit; }
.chart-svg .tick { font-size: 10.5px; fill: #6b7280; }
.chart-svg .legend { font-size: 11px; fill: #374151; }
.chart-svg .cat { font-size: 12px; fill: #374151; }
.chart-svg .value { font-size: 11px; fill: #374151; font-variant-numeric: tabular-nums; }
.chart-svg .empty { font-size: 13px; fill: #9ca3af; }
.chart-svg .grid { stroke: #eef0f3; stroke-width: 1; }
.chart-svg .axis { stroke: #c4c9d1; stroke-width: 1; }
.chart-svg .hover { fill: transparent; }
.chart-svg .hover:hover { fill: rgba(79, 70, 229, .06); }
.chart-svg .mark:hover { opacity: .8; }
details { margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); font-size: 12px; }
.scroll { max-height: 320px; overflow: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
thead th { color: var(--muted); font-weight: 600; position: sticky; top: 0; background: var(--card); }
caption { text-align: left; color: var(--muted); font-size: 12px; padding: 4px 0; caption-side: top; }
.inline-bar .track { fill: #f1f2f5; }
.notice { background: #ecfdf5; border: 1px solid #a7f3d0; color: #065f46; padding: 8px 12px; border-radius: 8px; margin-bottom: 12px; }
.warn { color: #b45309; }
.badge { display: inline-block; padding: 0 6px; border-radius: 999px; font-size: 11px; border: 1px solid var(--line); }
.badge.active { background: #ecfdf5; border-color: #a7f3d0; color: #065f46; }
.badge.revoked { background: #fef2f2; border-color: #fecaca; color: #991b1b; }
.badge.expired { background: #f3f4f6; color: #6b7280; }
form.inline { display: inline; }
button, .button { font: inherit; font-size: 12.5px; padding: 4px 10px; border-radius: 6px; border: 1px solid #d1d5db; background: #fff; color: var(--ink); cursor: pointer; }
button.danger { background: #dc2626; border-color: #dc2626; color: #fff; }
.confirm { max-width: 560px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
nav.console { display: flex; gap: 10px; font-size: 13px; }
form.search { display: flex; gap: 4px; }
form.search input { font: inherit; font-size: 13px; padding: 3px 8px; border-radius: 6px; border: 1px solid #374151; min-width: 260px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
form.act { display: grid; gap: 8px; max-width: 420px; }
form.act label { display: grid; gap: 2px; font-size: 12.5px; color: var(--muted); }
form.act input, form.act select { font: inherit; padding: 4px 8px; border: 1px solid #d1d5db; border-radius: 6px; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0; }
.badge.refused, .badge.denied { background: #fef2f2; border-color: #fecaca; color: #991b1b; }
.badge.duplicate, .badge.ignored { background: #f3f4f6; color: #6b7280; }
.badge.accepted, .badge.allowed { background: #ecfdf5; border-color: #a7f3d0; color: #065f46; }
pre.json { margin: 0; font-size: 11.5px; white-space: pre-wrap; max-width: 420px; }
a.csv { font-size: 12px; margin-left: 8px; }
`;

const ACTION_COLORS = ['#4f46e5', '#0d9488', '#0284c7', '#7c3aed', '#64748b', '#65a30d'];
const DENIED_COLORS = ['#f97316', '#e11d48', '#d97706', '#db2777', '#a16207', '#dc2626'];
const PLAN_COLORS: Record<string, string> = { free: '#cbd5e1', basic: '#60a5fa', pro: '#6366f1', enterprise: '#0f766e' };
const EXTRA_PLAN_COLORS = ['#f59e0b', '#ec4899', '#84cc16', '#06b6d4', '#a855f7'];

export function planColors(plans: PlanInfo[]): Record<string, string> {
  let k = 0;
  return Object.fromEntries(plans.map((p) => [p.slug, PLAN_COLORS[p.slug] ?? EXTRA_PLAN_COLORS[k++ % EXTRA_PLAN_COLORS.length]!]));
}

export const dollars = (cents: number): string =>
  `$${(cents / 100).toLocaleString('en-US', { minimumFractionDigits: cents % 100 === 0 && cents >= 100000 ? 0 : 2, maximumFractionDigits: 2 })}`;

export const iso = (d: Date | null) => (d ? new Date(d).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : '–');

export interface PageContext {
  /** Where the dashboard is mounted, '' or '/admin/dashboard'. */
  base: string;
  /** The database, safe to print. */
  target: string;
  /** Server time spent in the database for this page, ms. */
  dbMs?: number;
  /** The search box's text (the search page). */
  query?: string;
}

/** The console's links and its search box, on every page. */
function consoleNav(ctx: PageContext): string {
  const link = (path: string, text: string) => `<a href="${h(`${ctx.base}${path}`)}">${h(text)}</a>`;
  return `<nav class="console" aria-label="Console">${link('/', 'Overview')}${link('/failures', 'What failed')}${link('/money', 'Money')}${link('/series', 'Churn and conversion')}${link('/audit', 'Audit log')}</nav>
<form class="search" role="search" method="get" action="${h(`${ctx.base}/search`)}"><label for="q" class="visually-hidden">Find a user</label><input id="q" name="q" type="search" maxlength="255" placeholder="email, Figma id, name, license prefix, cus_…" value="${h(ctx.query ?? '')}"><button type="submit">Find</button></form>`;
}

export function layout(ctx: PageContext, title: string, body: string, nav = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${h(title)}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
</head>
<body>
<header class="top"><h1><a href="${h(ctx.base)}/">figma-plugin-auth-db</a> · ${h(title)}</h1><span class="meta">${h(ctx.target)}</span>${consoleNav(ctx)}${nav}</header>
<main>
${body}
</main>
</body>
</html>`;
}

function rangeNav(ctx: PageContext, path: string, days: number, extra = ''): string {
  return `<nav class="range" aria-label="Date range">${RANGES.map(
    (d) => `<a href="${h(`${ctx.base}${path}?days=${d}${extra}`)}"${d === days ? ' aria-current="page"' : ''}>${d} days</a>`,
  ).join('')}</nav>`;
}

export function table(id: string, caption: string, head: string[], rows: (string | number)[][], textColumns: number[] = [0]): string {
  const cell = (tag: 'td' | 'th', v: string | number, i: number) =>
    `<${tag}${textColumns.includes(i) && i > 0 ? ' class="text"' : ''}>${typeof v === 'number' ? formatNumber(v) : v}</${tag}>`;
  return `<table id="${id}"><caption>${h(caption)}</caption><thead><tr>${head.map((c, i) => `<th scope="col"${textColumns.includes(i) && i > 0 ? ' class="text"' : ''}>${h(c)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((v, i) => cell(i === 0 ? 'th' : 'td', v, i).replace(/^<th>/, '<th scope="row">')).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function card(id: string, title: string, definition: string, chart: string, data: string, options: { wide?: boolean; open?: boolean } = {}): string {
  return `<section class="card${options.wide ? ' wide' : ''}" id="${id}" aria-labelledby="${id}-title">
<h2 id="${id}-title">${h(title)}</h2>
<p class="def">${definition}</p>
${chart}
<details${options.open ? ' open' : ''}><summary>Numbers</summary><div class="scroll">${data}</div></details>
</section>`;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const pct = (part: number, whole: number) => (whole > 0 ? `${Math.round((part / whole) * 1000) / 10}%` : '–');

export function renderOverview(ctx: PageContext, o: Overview): string {
  const { range } = o;
  const dates = range.dates;
  const rangeText = `${shortDate(range.from)} – ${shortDate(range.to)} ${range.to.slice(0, 4)} (UTC)`;

  // Calls per day, per action, allowed then denied, stacked.
  const callsBy = new Map(o.calls.map((c) => [`${c.date}|${c.action}`, c]));
  const callSeries: Series[] = o.actions.flatMap((action, k) => [
    { name: `${action} allowed`, color: ACTION_COLORS[k % ACTION_COLORS.length]!, values: dates.map((d) => callsBy.get(`${d}|${action}`)?.allowed ?? 0) },
    { name: `${action} denied`, color: DENIED_COLORS[k % DENIED_COLORS.length]!, values: dates.map((d) => callsBy.get(`${d}|${action}`)?.denied ?? 0) },
  ]);
  const allowedTotal = sum(o.calls.map((c) => c.allowed));
  const deniedTotal = sum(o.calls.map((c) => c.denied));
  const callsChart = stackedBarChart({
    id: 'chart-calls',
    label: `Calls per day over the last ${range.days} days, allowed and denied per action, stacked: ${formatNumber(allowedTotal)} allowed and ${formatNumber(deniedTotal)} denied in total`,
    categories: dates,
    series: callSeries,
    width: 1280,
    height: 230,
    emptyText: 'No calls in this range',
  });
  const callsTable = table(
    'table-calls',
    'Calls per UTC day and action',
    ['Day', 'Action', 'Allowed', 'Denied'],
    [...o.calls].sort((a, b) => (a.date === b.date ? a.action.localeCompare(b.action) : a.date.localeCompare(b.date))).map((c) => [c.date, h(c.action), c.allowed, c.denied]),
    [0, 1],
  );

  // Users per day.
  const usersChart = lineChart({
    id: 'chart-users',
    label: `Users per day over the last ${range.days} days: active users, new users and users who hit a limit`,
    categories: dates,
    series: [
      { name: 'Active users', color: '#4f46e5', values: o.users.map((u) => u.active) },
      { name: 'New users', color: '#0d9488', values: o.users.map((u) => u.newUsers) },
      { name: 'Hit a limit', color: '#f97316', values: o.users.map((u) => u.hitLimit) },
    ],
  });
  const usersTable = table('table-users', 'Users per UTC day', ['Day', 'Active users', 'New users', 'Hit a limit'], o.users.map((u) => [u.date, u.active, u.newUsers, u.hitLimit]));

  // Funnel.
  const f = o.funnel;
  const funnel = funnelChart({
    id: 'chart-funnel',
    label: `Conversion funnel over the last ${range.days} days: ${f.hitLimit} users hit the limit, ${f.upgraded} upgraded within ${f.withinDays} days, ${f.stillPaying} still on a paid plan`,
    stages: [
      { label: 'Hit the limit', value: f.hitLimit, color: '#f97316' },
      { label: `Upgraded ≤ ${f.withinDays} d`, value: f.upgraded, color: '#6366f1' },
      { label: 'Still paying', value: f.stillPaying, color: '#0f766e' },
    ],
  });
  const funnelTable = table('table-funnel', `Users whose first limit_reached denial is in the range; upgraded within ${f.withinDays} days`, ['Stage', 'Users', 'Share of first stage'], [
    ['Hit limit_reached', f.hitLimit, f.hitLimit > 0 ? '100%' : '–'],
    [`Upgraded within ${f.withinDays} days`, f.upgraded, pct(f.upgraded, f.hitLimit)],
    ['Still on a paid plan now', f.stillPaying, pct(f.stillPaying, f.hitLimit)],
  ]);
  const withinLinks = [3, 7, 14, 30].map((n) => (n === f.withinDays ? `<strong>${n} d</strong>` : `<a href="${h(`${ctx.base}/?days=${range.days}&within=${n}`)}">${n} d</a>`)).join(' · ');

  // Plan mix and MRR.
  const colors = planColors(o.plans);
  const mixChart = stackedBarChart({
    id: 'chart-plans',
    label: `Users per plan at the end of each day over the last ${range.days} days, stacked`,
    categories: dates,
    series: o.plans.map((p) => ({ name: p.name, color: colors[p.slug]!, values: o.planMix.map((d) => d.users[p.slug] ?? 0) })),
  });
  const mixTable = table('table-plans', 'Users per plan at the end of each UTC day (now, for today)', ['Day', ...o.plans.map((p) => p.slug)], o.planMix.map((d) => [d.date, ...o.plans.map((p) => d.users[p.slug] ?? 0)]));
  const last = o.planMix.at(-1);
  const firstDay = o.planMix[0];
  const paid = o.plans.filter((p) => p.priceMonthly > 0);
  const mrrOf = (day: typeof last, p: PlanInfo) => (day?.paying[p.slug] ?? 0) * p.priceMonthly;
  const mrrNow = sum(paid.map((p) => mrrOf(last, p)));
  const mrrStart = sum(paid.map((p) => mrrOf(firstDay, p)));
  const mrrChart = horizontalBarChart({
    id: 'chart-mrr',
    label: `Monthly recurring revenue by plan now: ${dollars(mrrNow)} in total`,
    format: (n) => dollars(n),
    items: paid.map((p) => ({
      label: p.name,
      value: mrrOf(last, p),
      color: colors[p.slug]!,
      text: `${dollars(mrrOf(last, p))}  (${formatNumber(last?.paying[p.slug] ?? 0)} × ${dollars(p.priceMonthly)})`,
    })),
  });
  const mrrTable = table('table-mrr', 'Monthly recurring revenue: paying subscriptions × the plan price', ['Plan', 'Price / month', 'Paying now', 'MRR now', `MRR on ${range.from}`], [
    ...paid.map((p) => [h(p.slug), dollars(p.priceMonthly), last?.paying[p.slug] ?? 0, dollars(mrrOf(last, p)), dollars(mrrOf(firstDay, p))]),
    ['total', '', sum(paid.map((p) => last?.paying[p.slug] ?? 0)), dollars(mrrNow), dollars(mrrStart)],
  ]);

  // Devices and tokens.
  const buckets = o.devices.map((b) => (b.count === 5 ? '5+' : String(b.count)));
  const devicesChart = groupedBarChart({
    id: 'chart-devices',
    label: `Users by number of distinct devices and of live tokens: ${o.usersWithTokens} users hold ${o.liveTokens} live tokens`,
    categories: buckets,
    categoryLabel: (c) => c,
    series: [
      { name: 'Users by devices', color: '#0284c7', values: o.devices.map((b) => b.byDevices) },
      { name: 'Users by live tokens', color: '#a5b4fc', values: o.devices.map((b) => b.byTokens) },
    ],
  });
  const devicesTable = table('table-devices', 'Users per number of distinct devices / live tokens (not revoked, not expired)', ['Count', 'Users by devices', 'Users by live tokens'], o.devices.map((b, i) => [buckets[i]!, b.byDevices, b.byTokens]));
  const sharingTable = o.sharing.length
    ? table(
        'table-sharing',
        `Possible sharing: ${o.sharing.length} user${o.sharing.length === 1 ? '' : 's'} with live tokens on ${o.sharingThreshold} or more devices`,
        ['User', 'Devices', 'Live tokens', 'Device names'],
        o.sharing.map((s) => [`<a href="${h(`${ctx.base}/users/${s.userId}?days=${range.days}`)}">${h(s.email)}</a>`, s.devices, s.tokens, h(s.deviceNames.join(', '))]),
        [0, 3],
      )
    : `<table id="table-sharing"><caption>Possible sharing: no user has live tokens on ${o.sharingThreshold} or more devices</caption><tbody></tbody></table>`;

  // Top users.
  const maxCalls = Math.max(0, ...o.topUsers.map((t) => t.calls));
  const topTable = table(
    'table-top-users',
    `Top ${o.topUsers.length} users by calls in the range (counted operations plus denied calls)`,
    ['User', 'Plan', 'Calls', 'Counted', 'Denied', ''],
    o.topUsers.map((t) => [`<a href="${h(`${ctx.base}/users/${t.userId}?days=${range.days}`)}">${h(t.email)}</a>`, h(t.planSlug), t.calls, t.used, t.denied, inlineBar(t.calls, maxCalls, '#4f46e5')]),
    [0, 1],
  );

  const activeAvg = o.users.length ? sum(o.users.map((u) => u.active)) / o.users.length : 0;
  const kpis = `<div class="kpis" role="list">
${kpi('Calls', formatNumber(allowedTotal + deniedTotal), `${formatNumber(deniedTotal)} denied (${pct(deniedTotal, allowedTotal + deniedTotal)})`, 'kpi-calls')}
${kpi('Active users today', formatNumber(o.users.at(-1)?.active ?? 0), `${formatNumber(Math.round(activeAvg * 10) / 10)} per day on average`, 'kpi-active')}
${kpi('New users', formatNumber(sum(o.users.map((u) => u.newUsers))), `in ${range.days} days`, 'kpi-new')}
${kpi('Hit the limit', formatNumber(f.hitLimit), `${formatNumber(f.upgraded)} upgraded within ${f.withinDays} days (${pct(f.upgraded, f.hitLimit)})`, 'kpi-funnel')}
${kpi('MRR', dollars(mrrNow), `${mrrNow >= mrrStart ? '+' : '−'}${dollars(Math.abs(mrrNow - mrrStart))} since ${shortDate(range.from)}`, 'kpi-mrr')}
${kpi('Live tokens', formatNumber(o.liveTokens), `${formatNumber(o.sharing.length)} possible sharing`, 'kpi-tokens')}
</div>`;

  const body = `${kpis}
<div class="grid">
${card('calls', 'Calls per day', `Every metered call, allowed and denied, per action (usage_daily_totals). ${h(rangeText)}.`, callsChart, callsTable, { wide: true })}
${card('users', 'Active, new and limited users', 'Active: a counter row or a denied call that day. New: created that day. Hit a limit: a limit_reached denial that day.', usersChart, usersTable)}
${card('funnel', 'Conversion funnel', `Users whose first <code>limit_reached</code> in the range was followed, within N days, by a move to a plan that costs more and grants access. Window: ${withinLinks}`, funnel, funnelTable, { open: true })}
${card('plans', 'Plan mix over time', 'Users on each plan at the end of each day: the best plan any source grants then (subscription, Figma, license, seat), else free.', mixChart, mixTable)}
${card('mrr', 'Monthly recurring revenue by plan', 'Active and past-due subscriptions that grant access, times the plan’s monthly price (trials, manual plans and other sources excluded).', mrrChart, mrrTable, { open: true })}
${card('devices', 'Devices and live tokens per user', `Live tokens: not revoked and not expired. Possible sharing: ${o.sharingThreshold} or more distinct device names.`, devicesChart, `${devicesTable}`, { open: false })}
<section class="card" id="sharing" aria-labelledby="sharing-title"><h2 id="sharing-title">Possible sharing</h2><p class="def">Users with live tokens on ${o.sharingThreshold} or more devices: open one to see and revoke its tokens.</p><div class="scroll">${sharingTable}</div></section>
<section class="card wide" id="top-users" aria-labelledby="top-users-title"><h2 id="top-users-title">Top users by calls</h2><p class="def">Counted operations (daily counters: allowed minus refunded) plus denied calls, ${h(rangeText)}.</p><div class="scroll">${topTable}</div></section>
</div>
<p class="def">Read at ${h(iso(range.now))}${ctx.dbMs === undefined ? '' : ` · ${Math.round(ctx.dbMs)} ms in the database`} · definitions: docs/dashboard.md</p>`;
  return layout(ctx, `dashboard, last ${range.days} days`, body, rangeNav(ctx, '/', range.days, `&within=${f.withinDays}`));
}

function kpi(label: string, value: string, sub: string, id: string): string {
  return `<div class="kpi" role="listitem" id="${id}"><div class="label">${h(label)}</div><div class="value">${h(value)}</div><div class="sub">${h(sub)}</div></div>`;
}

export function renderUser(ctx: PageContext, v: UserView, options: { notice?: string; extra?: string } = {}): string {
  const { range } = v;
  const actions = [...new Set(v.usage.map((u) => u.action))].sort();
  const by = new Map(v.usage.map((u) => [`${u.date}|${u.action}`, u]));
  const series: Series[] = actions.flatMap((action, k) => [
    { name: `${action} allowed`, color: ACTION_COLORS[k % ACTION_COLORS.length]!, values: range.dates.map((d) => by.get(`${d}|${action}`)?.allowed ?? 0) },
    { name: `${action} denied`, color: DENIED_COLORS[k % DENIED_COLORS.length]!, values: range.dates.map((d) => by.get(`${d}|${action}`)?.denied ?? 0) },
  ]);
  const chart = stackedBarChart({
    id: 'chart-user-usage',
    label: `Calls per day of ${v.user.email} over the last ${range.days} days, allowed and denied per action: ${sum(v.usage.map((u) => u.allowed))} allowed, ${sum(v.usage.map((u) => u.denied))} denied`,
    categories: range.dates,
    series,
    emptyText: 'No calls in this range',
  });
  const usageTable = table('table-user-usage', 'Per UTC day and action (usage_summary)', ['Day', 'Action', 'Counted', 'Allowed', 'Denied', 'Refunded'], v.usage.map((u) => [u.date, h(u.action), u.used, u.allowed, u.denied, u.refunded]), [0, 1]);
  const noPlan = (source: string) => (source === 'stripe' || source === 'manual' || source === 'subscription' || source === 'deleted' ? '(subscription removed)' : '(no plan)');
  const historyTable = v.history.length
    ? table('table-plan-history', 'Plan history, newest first, from every source (subscription, Figma, license, seat)', ['Changed', 'Plan', 'Status', 'Until', 'Grants access', 'Source'], v.history.map((x) => [iso(x.changedAt), h(x.planSlug ?? noPlan(x.source)), h(x.status ?? '–'), iso(x.currentPeriodEnd), x.grantsAccess ? 'yes' : 'no', h(x.source)]), [0, 1, 2, 3, 4, 5])
    : '<table id="table-plan-history"><caption>No plan history: no source ever gave this user a plan (free).</caption><tbody></tbody></table>';
  const grantsTable = v.grants.length
    ? table('table-grants', 'Sources granting a plan now, best first (the first one applies)', ['Source', 'Plan', 'Detail', 'Until'], v.grants.map((g) => [h(g.source), h(g.planSlug), h(g.detail ?? '–'), iso(g.until)]), [0, 1, 2, 3])
    : '<table id="table-grants"><caption>No source grants a plan now: the free plan applies.</caption><tbody></tbody></table>';
  const tokensTable = table(
    'table-tokens',
    'Plugin tokens, newest first (never the token itself)',
    ['Device', 'Status', 'Created', 'Expires', 'Last used', 'Revoked', ''],
    v.tokens.map((t) => [
      h(t.deviceName ?? '(unnamed)'),
      `<span class="badge ${t.status}">${t.status}</span>${t.revokedReason ? ` ${h(t.revokedReason)}` : ''}`,
      iso(t.createdAt),
      iso(t.expiresAt),
      iso(t.lastUsedAt),
      iso(t.revokedAt),
      t.status === 'active' ? `<a class="button" href="${h(`${ctx.base}/users/${v.user.id}/tokens/${t.tokenId}/revoke`)}" data-token-id="${h(t.tokenId)}">Revoke…</a>` : '',
    ]),
    [0, 1, 2, 3, 4, 5],
  );
  const body = `${options.notice ? `<p class="notice" role="status">${h(options.notice)}</p>` : ''}
<p><a href="${h(`${ctx.base}/?days=${range.days}`)}">← Overview</a></p>
<div class="grid">
<section class="card" id="user" aria-labelledby="user-title"><h2 id="user-title">${h(v.user.email)}</h2>
<dl class="facts"><dt>User id</dt><dd><code>${h(v.user.id)}</code></dd><dt>Name</dt><dd>${h(v.user.name ?? '–')}</dd><dt>Created</dt><dd>${h(iso(v.user.createdAt))}</dd><dt>Plan now</dt><dd id="plan-now">${h(v.planNow.slug)}${v.planNow.status ? ` (${h(v.planNow.status)}, ${h(v.planNow.source)})` : ''}</dd><dt>Live tokens</dt><dd>${v.tokens.filter((t) => t.status === 'active').length} on ${new Set(v.tokens.filter((t) => t.status === 'active').map((t) => t.deviceName ?? '')).size} devices</dd></dl>
</section>
${card('user-usage', 'Usage by day', `Calls of this user per day and action, ${h(shortDate(range.from))} – ${h(shortDate(range.to))}.`, chart, usageTable, { open: true })}
<section class="card" id="history" aria-labelledby="history-title"><h2 id="history-title">Plan history</h2><div class="scroll">${grantsTable}</div><div class="scroll">${historyTable}</div></section>
<section class="card wide" id="tokens" aria-labelledby="tokens-title"><h2 id="tokens-title">Tokens</h2><p class="def">Revoking signs that device out: the plugin must sign in again.</p><div class="scroll">${tokensTable}</div></section>
${options.extra ?? ''}
</div>`;
  return layout(ctx, `user ${v.user.email}`, body, rangeNav(ctx, `/users/${v.user.id}`, range.days));
}

export function renderConfirmRevoke(ctx: PageContext, v: UserView, tokenId: string, csrf: string): string {
  const t = v.tokens.find((x) => x.tokenId === tokenId);
  const body = `<section class="card confirm" id="confirm" aria-labelledby="confirm-title">
<h2 id="confirm-title">Revoke this token?</h2>
<dl class="facts"><dt>User</dt><dd>${h(v.user.email)}</dd><dt>Device</dt><dd>${h(t?.deviceName ?? '(unnamed)')}</dd><dt>Created</dt><dd>${h(iso(t?.createdAt ?? null))}</dd><dt>Last used</dt><dd>${h(iso(t?.lastUsedAt ?? null))}</dd></dl>
<p>The plugin on that device is signed out at its next request and must sign in again. This cannot be undone.</p>
<form method="post" action="${h(`${ctx.base}/users/${v.user.id}/tokens/${tokenId}/revoke`)}">
<input type="hidden" name="csrf" value="${h(csrf)}">
<input type="hidden" name="confirm" value="yes">
<button type="submit" class="danger" id="confirm-revoke">Revoke token</button>
<a class="button" href="${h(`${ctx.base}/users/${v.user.id}`)}">Cancel</a>
</form>
</section>`;
  return layout(ctx, 'revoke a token', body);
}

export function renderMessage(ctx: PageContext, title: string, message: string): string {
  return layout(ctx, title, `<section class="card confirm"><h2>${h(title)}</h2><p>${h(message)}</p></section>`);
}
