// Server-rendered SVG charts: axes, gridlines, a legend, and a tooltip on every mark (SVG <title>,
// which every browser shows on hover and screen readers can reach). No script, no style
// attribute (the page's Content-Security-Policy allows neither): colours are presentation
// attributes, hover effects are classes of the page's stylesheet.

export interface Series {
  name: string;
  color: string;
  values: number[];
}

export const escapeHtml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

export const formatNumber = (n: number): string => n.toLocaleString('en-US');

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** '2026-11-03' → 'Nov 3'. */
export const shortDate = (date: string): string => `${MONTHS[Number(date.slice(5, 7)) - 1]} ${Number(date.slice(8, 10))}`;

/** A round axis maximum and its step: 1, 2 or 5 times a power of ten, about four ticks. */
export function niceScale(max: number): { max: number; step: number } {
  if (!(max > 0)) return { max: 4, step: 1 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  // Counts and cents are whole numbers: never a step below 1.
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!);
  return { max: Math.ceil(max / step) * step, step };
}

const W = 640;
const num = (n: number) => Number(n.toFixed(2)).toString();
const textWidth = (text: string, size = 11) => text.length * size * 0.58;

interface Frame {
  width: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  height: number;
}

function legend(series: { name: string; color: string }[], width: number): { svg: string; height: number } {
  let x = 0;
  let y = 0;
  const parts: string[] = [];
  for (const s of series) {
    const w = 16 + textWidth(s.name) + 14;
    if (x > 0 && x + w > width) {
      x = 0;
      y += 18;
    }
    parts.push(`<rect x="${num(x)}" y="${y}" width="10" height="10" rx="2" fill="${s.color}"/><text x="${num(x + 15)}" y="${y + 9}" class="legend">${escapeHtml(s.name)}</text>`);
    x += w;
  }
  return { svg: parts.join(''), height: series.length ? y + 18 : 0 };
}

function open(id: string, label: string, height: number, width = W): string {
  return `<svg id="${id}" role="img" aria-label="${escapeHtml(label)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg" class="chart-svg">`;
}

/** Y axis with gridlines; returns the mapping of a value to a y coordinate. */
function yAxis(frame: Frame, max: number, format: (n: number) => string): { svg: string; y: (v: number) => number } {
  const scale = niceScale(max);
  const plotH = frame.height - frame.top - frame.bottom;
  const y = (v: number) => frame.top + plotH - (v / scale.max) * plotH;
  const parts: string[] = [];
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    parts.push(`<line x1="${frame.left}" x2="${frame.width - frame.right}" y1="${num(y(v))}" y2="${num(y(v))}" class="${v === 0 ? 'axis' : 'grid'}"/>`);
    parts.push(`<text x="${frame.left - 6}" y="${num(y(v) + 4)}" text-anchor="end" class="tick">${escapeHtml(format(v))}</text>`);
  }
  return { svg: parts.join(''), y };
}

function xLabels(categories: string[], x: (i: number) => number, baseline: number, label: (c: string) => string): string {
  const step = Math.max(1, Math.ceil(categories.length / 8));
  const parts: string[] = [];
  categories.forEach((c, i) => {
    if ((categories.length - 1 - i) % step !== 0) return;
    parts.push(`<line x1="${num(x(i))}" x2="${num(x(i))}" y1="${baseline}" y2="${baseline + 4}" class="axis"/>`);
    parts.push(`<text x="${num(x(i))}" y="${baseline + 16}" text-anchor="middle" class="tick">${escapeHtml(label(c))}</text>`);
  });
  return parts.join('');
}

export interface TimeChart {
  id: string;
  /** aria-label: what the chart shows. */
  label: string;
  categories: string[];
  series: Series[];
  format?: (n: number) => string;
  /** Category label under the axis (default: a short date). */
  categoryLabel?: (c: string) => string;
  height?: number;
  /** viewBox width (default 640); the chart scales to its container. */
  width?: number;
  emptyText?: string;
}

/** Bars per category, the series stacked in order (first at the bottom). */
export function stackedBarChart(chart: TimeChart): string {
  const format = chart.format ?? formatNumber;
  const label = chart.categoryLabel ?? shortDate;
  const w = chart.width ?? W;
  const lg = legend(chart.series, w - 56);
  const frame: Frame = { width: w, left: 52, right: 8, top: lg.height + 10, bottom: 26, height: (chart.height ?? 240) + lg.height };
  const totals = chart.categories.map((_, i) => chart.series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const axis = yAxis(frame, Math.max(...totals, 0), format);
  const plotW = w - frame.left - frame.right;
  const band = plotW / Math.max(chart.categories.length, 1);
  const barW = Math.max(2, Math.min(36, band * 0.72));
  const x = (i: number) => frame.left + band * i + band / 2;
  const baseline = frame.height - frame.bottom;
  const marks: string[] = [];
  chart.categories.forEach((c, i) => {
    const lines = chart.series.filter((s) => (s.values[i] ?? 0) > 0).map((s) => `${s.name}: ${format(s.values[i]!)}`);
    marks.push(`<rect x="${num(frame.left + band * i)}" y="${frame.top}" width="${num(band)}" height="${baseline - frame.top}" class="hover"><title>${escapeHtml(`${label(c)} · total ${format(totals[i]!)}${lines.length ? `\n${lines.join('\n')}` : ''}`)}</title></rect>`);
    let acc = 0;
    for (const s of chart.series) {
      const v = s.values[i] ?? 0;
      if (v <= 0) continue;
      const y0 = axis.y(acc);
      const y1 = axis.y(acc + v);
      acc += v;
      marks.push(`<rect x="${num(x(i) - barW / 2)}" y="${num(y1)}" width="${num(barW)}" height="${num(Math.max(y0 - y1, 0.5))}" fill="${s.color}" class="mark"><title>${escapeHtml(`${label(c)} · ${s.name}: ${format(v)}`)}</title></rect>`);
    }
  });
  const empty = totals.every((t) => t === 0) ? `<text x="${w / 2}" y="${(frame.top + baseline) / 2}" text-anchor="middle" class="empty">${escapeHtml(chart.emptyText ?? 'No data in this range')}</text>` : '';
  return `${open(chart.id, chart.label, frame.height, w)}<g>${lg.svg}</g>${axis.svg}${marks.join('')}${xLabels(chart.categories, x, baseline, label)}${empty}</svg>`;
}

/** One line per series, a dot per value; hovering a day shows every series' value. */
export function lineChart(chart: TimeChart): string {
  const format = chart.format ?? formatNumber;
  const label = chart.categoryLabel ?? shortDate;
  const w = chart.width ?? W;
  const lg = legend(chart.series, w - 56);
  const frame: Frame = { width: w, left: 52, right: 14, top: lg.height + 10, bottom: 26, height: (chart.height ?? 240) + lg.height };
  const axis = yAxis(frame, Math.max(0, ...chart.series.flatMap((s) => s.values)), format);
  const n = chart.categories.length;
  const plotW = w - frame.left - frame.right;
  const x = (i: number) => frame.left + (n <= 1 ? plotW / 2 : (plotW * i) / (n - 1));
  const baseline = frame.height - frame.bottom;
  const lines = chart.series.map((s) => {
    const points = s.values.map((v, i) => `${num(x(i))},${num(axis.y(v))}`).join(' ');
    const dots = n <= 45 ? s.values.map((v, i) => `<circle cx="${num(x(i))}" cy="${num(axis.y(v))}" r="2.6" fill="${s.color}"/>`).join('') : '';
    return `<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>${dots}`;
  });
  const step = n <= 1 ? plotW : plotW / (n - 1);
  const hovers = chart.categories.map((c, i) => {
    const text = `${label(c)}\n${chart.series.map((s) => `${s.name}: ${format(s.values[i] ?? 0)}`).join('\n')}`;
    return `<rect x="${num(Math.max(frame.left, x(i) - step / 2))}" y="${frame.top}" width="${num(Math.min(step, plotW))}" height="${baseline - frame.top}" class="hover"><title>${escapeHtml(text)}</title></rect>`;
  });
  return `${open(chart.id, chart.label, frame.height, w)}<g>${lg.svg}</g>${axis.svg}${lines.join('')}${hovers.join('')}${xLabels(chart.categories, x, baseline, label)}</svg>`;
}

export interface BarItem {
  label: string;
  value: number;
  color: string;
  /** Text at the end of the bar (default: the value). */
  text?: string;
  tooltip?: string;
}

/** Horizontal bars, one per item, on a common scale starting at zero. */
export function horizontalBarChart(chart: { id: string; label: string; items: BarItem[]; format?: (n: number) => string; max?: number }): string {
  const format = chart.format ?? formatNumber;
  const labelW = Math.min(180, Math.max(60, ...chart.items.map((i) => textWidth(i.label, 12) + 12)));
  const rowH = 34;
  const top = 8;
  const height = top + chart.items.length * rowH + 30;
  const left = labelW;
  const right = Math.max(60, ...chart.items.map((i) => textWidth(i.text ?? format(i.value)) + 16));
  const plotW = W - left - right;
  const scale = niceScale(chart.max ?? Math.max(0, ...chart.items.map((i) => i.value)));
  const x = (v: number) => left + (v / scale.max) * plotW;
  const baseline = top + chart.items.length * rowH;
  const parts: string[] = [];
  for (let v = 0; v <= scale.max + 1e-9; v += scale.step) {
    parts.push(`<line x1="${num(x(v))}" x2="${num(x(v))}" y1="${top}" y2="${baseline}" class="${v === 0 ? 'axis' : 'grid'}"/>`);
    parts.push(`<text x="${num(x(v))}" y="${baseline + 16}" text-anchor="middle" class="tick">${escapeHtml(format(v))}</text>`);
  }
  chart.items.forEach((item, i) => {
    const y = top + i * rowH + 7;
    const w = Math.max(item.value > 0 ? 2 : 0, x(item.value) - left);
    parts.push(`<text x="${left - 10}" y="${y + 14}" text-anchor="end" class="cat">${escapeHtml(item.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${num(w)}" height="20" rx="3" fill="${item.color}" class="mark"><title>${escapeHtml(item.tooltip ?? `${item.label}: ${format(item.value)}`)}</title></rect>`);
    parts.push(`<text x="${num(left + w + 8)}" y="${y + 14}" class="value">${escapeHtml(item.text ?? format(item.value))}</text>`);
  });
  return `${open(chart.id, chart.label, height)}${parts.join('')}</svg>`;
}

/** Bars side by side per category, one per series. */
export function groupedBarChart(chart: TimeChart): string {
  const format = chart.format ?? formatNumber;
  const label = chart.categoryLabel ?? ((c: string) => c);
  const w = chart.width ?? W;
  const lg = legend(chart.series, w - 56);
  const frame: Frame = { width: w, left: 52, right: 8, top: lg.height + 10, bottom: 26, height: (chart.height ?? 200) + lg.height };
  const axis = yAxis(frame, Math.max(0, ...chart.series.flatMap((s) => s.values)), format);
  const plotW = w - frame.left - frame.right;
  const band = plotW / Math.max(chart.categories.length, 1);
  const groupW = band * 0.7;
  const barW = groupW / Math.max(chart.series.length, 1);
  const x = (i: number) => frame.left + band * i + band / 2;
  const baseline = frame.height - frame.bottom;
  const marks: string[] = [];
  chart.categories.forEach((c, i) => {
    chart.series.forEach((s, k) => {
      const v = s.values[i] ?? 0;
      const y = axis.y(v);
      const bx = x(i) - groupW / 2 + k * barW;
      marks.push(`<rect x="${num(bx + 1)}" y="${num(y)}" width="${num(barW - 2)}" height="${num(Math.max(baseline - y, v > 0 ? 1 : 0))}" rx="2" fill="${s.color}" class="mark"><title>${escapeHtml(`${label(c)} · ${s.name}: ${format(v)}`)}</title></rect>`);
      if (v > 0) marks.push(`<text x="${num(bx + barW / 2)}" y="${num(y - 4)}" text-anchor="middle" class="value">${escapeHtml(format(v))}</text>`);
    });
  });
  return `${open(chart.id, chart.label, frame.height, w)}<g>${lg.svg}</g>${axis.svg}${marks.join('')}${xLabels(chart.categories, x, baseline, label)}</svg>`;
}

/** The funnel: one bar per stage, width proportional to the first stage, with the share of it. */
export function funnelChart(chart: { id: string; label: string; stages: { label: string; value: number; color: string }[] }): string {
  const first = chart.stages[0]?.value ?? 0;
  return horizontalBarChart({
    id: chart.id,
    label: chart.label,
    max: Math.max(first, 1),
    items: chart.stages.map((s, i) => {
      const share = first > 0 ? `${Math.round((s.value / first) * 1000) / 10}%` : '–';
      return { label: s.label, value: s.value, color: s.color, text: i === 0 ? formatNumber(s.value) : `${formatNumber(s.value)} (${share})`, tooltip: `${s.label}: ${formatNumber(s.value)}${i === 0 ? '' : `, ${share} of those who hit the limit`}` };
    }),
  });
}

/** A small inline bar for a table cell (decorative: the number is in the cell). */
export function inlineBar(value: number, max: number, color: string): string {
  const w = max > 0 ? Math.max(value > 0 ? 1 : 0, (value / max) * 100) : 0;
  return `<svg aria-hidden="true" viewBox="0 0 100 8" width="100" height="8" class="inline-bar"><rect x="0" y="0" width="100" height="8" rx="2" class="track"/><rect x="0" y="0" width="${num(w)}" height="8" rx="2" fill="${color}"/></svg>`;
}
