// The HTML of churn and conversion over time (/series): the window and period links, two charts
// (new paying against churned; the churn and conversion rates), and the table of every figure
// with its CSV. Server-rendered, no script, no style attribute; every value escaped.
import type { Series, SeriesPeriod, SeriesUnit } from './series.ts';
import { SERIES_UNITS, SERIES_WINDOWS, defaultUnit } from './series.ts';
import { iso, layout, table, type PageContext } from './page.ts';
import { escapeHtml as h, formatNumber, groupedBarChart, lineChart } from './svg.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** 'Nov 3' for a day or a week (its Monday), 'Nov 2026' for a month. */
export function periodLabel(start: string, unit: SeriesUnit): string {
  const month = MONTHS[Number(start.slice(5, 7)) - 1]!;
  return unit === 'month' ? `${month} ${start.slice(0, 4)}` : `${unit === 'week' ? 'wk ' : ''}${month} ${Number(start.slice(8, 10))}`;
}

/** A share as a percentage with one decimal, '–' for none. */
export const percent = (share: number | null): string => (share === null ? '–' : `${Math.round(share * 1000) / 10}%`);

const UNIT_TEXT: Record<SeriesUnit, string> = { day: 'per day', week: 'per week', month: 'per month' };

export function seriesQuery(s: Pick<Series, 'days' | 'unit' | 'withinDays'>): string {
  return `days=${s.days}&by=${s.unit}&within=${s.withinDays}`;
}

export function renderSeries(ctx: PageContext, s: Series): string {
  const labels = s.periods.map((p) => periodLabel(p.start, s.unit));
  // Under the charts' axes, a week is named by its Monday (the table says 'wk').
  const axis = s.periods.map((p) => periodLabel(p.start, s.unit === 'week' ? 'day' : s.unit));
  const sum = (f: (p: SeriesPeriod) => number) => s.periods.reduce((a, p) => a + f(p), 0);
  const first = s.periods[0];
  const last = s.periods.at(-1);
  const movesChart = groupedBarChart({
    id: 'chart-series-moves',
    label: `New paying users and churned users ${UNIT_TEXT[s.unit]} over the last ${s.days} days: ${formatNumber(sum((p) => p.newPaying))} new, ${formatNumber(sum((p) => p.churned))} churned; ${formatNumber(first?.payingAtStart ?? 0)} paying at the start, ${formatNumber(last?.payingAtEnd ?? 0)} now`,
    categories: axis,
    categoryLabel: (c) => c,
    width: 1280,
    height: 220,
    series: [
      { name: 'New paying', color: '#0f766e', values: s.periods.map((p) => p.newPaying) },
      { name: 'Churned', color: '#dc2626', values: s.periods.map((p) => p.churned) },
    ],
  });
  const rate = (x: number | null) => (x === null ? 0 : Math.round(x * 1000) / 10);
  const ratesChart = lineChart({
    id: 'chart-series-rates',
    label: `Churn rate and conversion within ${s.withinDays} days ${UNIT_TEXT[s.unit]}, in percent`,
    categories: axis,
    categoryLabel: (c) => c,
    format: (n) => `${formatNumber(n)}%`,
    width: 1280,
    height: 200,
    series: [
      { name: 'Churn rate', color: '#dc2626', values: s.periods.map((p) => rate(p.churnRate)) },
      { name: `Conversion within ${s.withinDays} d`, color: '#4f46e5', values: s.periods.map((p) => rate(p.conversionRate)) },
    ],
  });
  const rows = s.periods.map((p, i) => [
    `<time datetime="${h(p.start)}">${h(p.start)}</time>`,
    h(labels[i]!),
    p.payingAtStart,
    p.newPaying,
    p.churned,
    percent(p.churnRate),
    p.payingAtEnd,
    p.signUps,
    p.converted,
    `${percent(p.conversionRate)}${p.complete || p.signUps === 0 ? '' : ' <span class="warn" title="some sign-ups have not had their days yet">so far</span>'}`,
  ]);
  const body = `<div class="grid">
<section class="card wide" id="series" aria-labelledby="series-title"><h2 id="series-title">Churn and conversion over time<a class="csv" href="${h(`${ctx.base}/export/series.csv?${seriesQuery(s)}`)}" download>CSV</a></h2>
<nav class="pick" aria-label="Window">Window: ${SERIES_WINDOWS.map((d) => (d === s.days ? `<strong aria-current="page">${d} days</strong>` : `<a href="${h(`${ctx.base}/series?days=${d}&by=${defaultUnit(d)}&within=${s.withinDays}`)}">${d} days</a>`)).join(' · ')}</nav>
<nav class="pick" aria-label="Period">Period: ${SERIES_UNITS.map((u) => (u === s.unit ? `<strong aria-current="page">${u}</strong>` : `<a href="${h(`${ctx.base}/series?days=${s.days}&by=${u}&within=${s.withinDays}`)}">${u}</a>`)).join(' · ')}</nav>
<nav class="pick" aria-label="Conversion window">Converted within: ${[7, 14, 30, 60, 90].map((n) => (n === s.withinDays ? `<strong aria-current="page">${n} days</strong>` : `<a href="${h(`${ctx.base}/series?days=${s.days}&by=${s.unit}&within=${n}`)}">${n} days</a>`)).join(' · ')}</nav>
<p class="def">Paying: a Stripe (or other subscription) row active or past due, a Figma PAID grant, or a Lemon Squeezy or Gumroad license that grants, on a plan with a price; trials, manual grants and team seats are not paying. Periods are UTC days, weeks from Monday or calendar months; the last one ends now. New paying: not paying at the period's start, paying at its end; churned: the other way round (a user who leaves and comes back within one period is neither). Churn rate: churned ÷ paying at the start. Conversion: users who signed up in the period and were paying within ${s.withinDays} days of signing up ("so far" while some have not had their ${s.withinDays} days). Definitions: docs/dashboard.md.</p>
${movesChart}
${ratesChart}
<div class="scroll">${table('table-series', `Paying users, churn and conversion ${UNIT_TEXT[s.unit]}, last ${s.days} days (UTC)`, ['Period start', 'Period', 'Paying at start', 'New paying', 'Churned', 'Churn rate', 'Paying at end', 'Sign-ups', `Paying within ${s.withinDays} d`, 'Conversion'], rows, [0, 1])}</div>
</section>
</div>
<p class="def">Read at ${h(iso(s.now))}${ctx.dbMs === undefined ? '' : ` · ${Math.round(ctx.dbMs)} ms in the database`}</p>`;
  return layout(ctx, `churn and conversion, last ${s.days} days`, body);
}
