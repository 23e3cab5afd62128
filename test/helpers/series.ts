// A plan history for churn and conversion over time (test/dashboard.series*.test.ts,
// scripts/dashboard-screenshot.ts): named users with a story each, written as the writers record
// them (one through the subscription row's own trigger, the others as rows of user_plan_history
// with the times the story needs), and the model the tests compute the expected series from.
import type { Database } from '../../src/core/db.ts';
import type { SeriesUnit } from '../../src/dashboard/series.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

export const SERIES_XSS = `<script>alert(1)</script>`;

export interface HistoryRow {
  source: 'stripe' | 'subscription' | 'manual' | 'deleted' | 'figma' | 'lemonsqueezy' | 'gumroad' | 'seat';
  at: Date;
  plan: string | null;
  status: string | null;
  periodEnd: Date | null;
  grants: boolean;
}

export interface SeriesModel {
  now: Date;
  today: string;
  users: { key: string; id: string; createdAt: Date }[];
  rows: Map<string, HistoryRow[]>;
  prices: Record<string, number>;
  stories: { blipLeave: Date; blipReturn: Date; midnightStart: Date; monthStart: Date; figmaLapse: Date };
  /** Paying just before b (ms): after every change strictly before b. */
  payingJustBefore(key: string, b: number): boolean;
  /** Paying at some moment of [from, to] (ms). */
  paidWithin(key: string, from: number, to: number): boolean;
}

/** The rule of subscription_grants_access. */
const subscriptionGrants = (status: string, periodEnd: Date | null, at: Date) =>
  status === 'active' || status === 'trialing' ? true
    : status === 'past_due' ? periodEnd !== null && periodEnd > at
      : status === 'manual' ? periodEnd === null || periodEnd > at
        : false;

const streamOf = (source: HistoryRow['source']) => (['stripe', 'subscription', 'manual', 'deleted'].includes(source) ? 'subscription' : source);

/** The paid intervals of one user, [start, end) in ms, from the rows of each stream. */
function paidIntervals(rows: HistoryRow[], prices: Record<string, number>): [number, number][] {
  const out: [number, number][] = [];
  const streams = new Map<string, HistoryRow[]>();
  for (const r of rows) streams.set(streamOf(r.source), [...(streams.get(streamOf(r.source)) ?? []), r]);
  for (const list of streams.values()) {
    list.sort((a, b) => a.at.getTime() - b.at.getTime());
    list.forEach((r, i) => {
      const pays =
        (r.source === 'stripe' || r.source === 'subscription') ? r.status === 'active' || r.status === 'past_due'
          : r.source === 'figma' ? r.status === 'PAID'
            : r.source === 'lemonsqueezy' || r.source === 'gumroad';
      if (!r.grants || !pays || r.plan === null || !(prices[r.plan]! > 0)) return;
      const next = list[i + 1]?.at.getTime() ?? Infinity;
      const cut = r.status === 'past_due' || r.source === 'figma' || r.source === 'lemonsqueezy' || r.source === 'gumroad' ? r.periodEnd?.getTime() ?? Infinity : Infinity;
      const end = Math.min(next, cut);
      if (end > r.at.getTime()) out.push([r.at.getTime(), end]);
    });
  }
  return out;
}

/** only: the keys of the stories to write (default: all). */
export async function seedSeries(db: Database, { only }: { only?: string[] } = {}): Promise<SeriesModel> {
  const [clock] = await db.query<{ now: Date }>('SELECT now() AS now');
  const now = new Date(clock!.now);
  const T0 = Date.parse(`${now.toISOString().slice(0, 10)}T00:00:00Z`);
  const d = (days: number, hours = 0) => new Date(T0 + days * DAY + hours * HOUR);
  const mondayOf = (t: number) => { const x = new Date(t); return Date.UTC(x.getUTCFullYear(), x.getUTCMonth(), x.getUTCDate() - ((x.getUTCDay() + 6) % 7)); };
  const blipMonday = mondayOf(T0 - 35 * DAY);
  const stories = {
    blipLeave: new Date(blipMonday + 2 * DAY + 10 * HOUR), // a Wednesday
    blipReturn: new Date(blipMonday + 4 * DAY + 9 * HOUR), // the Friday of the same week
    midnightStart: new Date(mondayOf(T0 - 14 * DAY)), // a Monday, 00:00:00 UTC
    monthStart: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1)), // the 1st of last month, 00:00 UTC
    figmaLapse: d(-5),
  };
  const plans = await db.query<{ plan_slug: string; price_monthly: number | null }>('SELECT plan_slug, price_monthly FROM public.subscription_plans');
  const prices = Object.fromEntries(plans.map((p) => [p.plan_slug, p.price_monthly ?? 0]));
  const users: SeriesModel['users'] = [];
  const rows = new Map<string, HistoryRow[]>();
  const skip = (key: string) => only !== undefined && !only.includes(key.replace(/\d+$/, ''));
  const user = async (key: string, createdAt: Date) => {
    if (skip(key)) return '';
    const [row] = await db.query<{ id: string }>(
      'INSERT INTO public.users (email, name, created_at, updated_at) VALUES ($1::varchar, $2::varchar, $3::timestamptz, $3::timestamptz) RETURNING id',
      [`${key}@series.example`, key === 'xss' ? SERIES_XSS : key, createdAt],
    );
    users.push({ key, id: row!.id, createdAt });
    rows.set(key, []);
    return row!.id;
  };
  const idOf = (key: string) => users.find((u) => u.key === key)!.id;
  /** A row as its writer records it (grants_access by the writer's rule at that moment). */
  const history = async (key: string, source: HistoryRow['source'], at: Date, plan: string | null, status: string | null, periodEnd: Date | null = null) => {
    if (skip(key)) return;
    const grants = plan === null ? false
      : source === 'figma' ? status === 'PAID' && (periodEnd === null || periodEnd > at)
        : source === 'lemonsqueezy' || source === 'gumroad' || source === 'seat' ? (status === 'active' || status === 'inactive') && (periodEnd === null || periodEnd > at)
          : subscriptionGrants(status ?? '', periodEnd, at);
    await db.query(
      `INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
       VALUES ($1::uuid, (SELECT p.id FROM public.subscription_plans AS p WHERE p.plan_slug = $2::varchar), $3::varchar, $4::timestamptz, $5::boolean, $6::varchar, $7::timestamptz)`,
      [idOf(key), plan, status, periodEnd, grants, source, at],
    );
    rows.get(key)!.push({ source, at, plan, status, periodEnd, grants });
  };

  await user('jon', d(-500)); // paying since before every window, still paying
  await history('jon', 'stripe', d(-450), 'pro', 'active');
  await user('ada', d(-100)); // canceled
  await history('ada', 'stripe', d(-80, 9), 'pro', 'active');
  await history('ada', 'stripe', d(-40, 15), 'pro', 'canceled');
  // bob through the subscription row's own trigger (back-dated updated_at): paying, then downgraded to free.
  if (!skip('bob')) {
  await user('bob', d(-95));
  await db.query(
    `INSERT INTO public.user_subscriptions (user_id, plan_id, status, created_at, updated_at)
     SELECT $1::uuid, p.id, 'active', $2::timestamptz, $2::timestamptz FROM public.subscription_plans AS p WHERE p.plan_slug = 'basic'`,
    [idOf('bob'), d(-60, 11)],
  );
  rows.get('bob')!.push({ source: 'subscription', at: d(-60, 11), plan: 'basic', status: 'active', periodEnd: null, grants: true });
  await db.query(
    `UPDATE public.user_subscriptions AS s SET plan_id = p.id, updated_at = $2::timestamptz
       FROM public.subscription_plans AS p WHERE p.plan_slug = 'free' AND s.user_id = $1::uuid`,
    [idOf('bob'), d(-20, 8)],
  );
  rows.get('bob')!.push({ source: 'subscription', at: d(-20, 8), plan: 'free', status: 'active', periodEnd: null, grants: true });
  }
  await user('cy', d(-55)); // a license refunded, then another store's license: comes back
  await history('cy', 'lemonsqueezy', d(-50, 10), 'pro', 'active');
  await history('cy', 'lemonsqueezy', d(-30, 10), 'pro', 'refunded');
  await history('cy', 'gumroad', d(-10, 10), 'basic', 'active');
  await user('dee', d(-120)); // leaves on a Wednesday, back on the Friday
  await history('dee', 'stripe', d(-70), 'pro', 'active');
  await history('dee', 'stripe', stories.blipLeave, 'pro', 'canceled');
  await history('dee', 'stripe', stories.blipReturn, 'pro', 'active');
  await user('eve', d(-36)); // Figma and Stripe at once; the Figma grant lapses, Stripe goes on
  await history('eve', 'figma', d(-35), 'pro', 'PAID', stories.figmaLapse);
  await history('eve', 'stripe', d(-30), 'pro', 'active');
  await user('fay', d(-26)); // a trial, then paying, then past due until the period's end
  await history('fay', 'stripe', d(-25), 'pro', 'trialing');
  await history('fay', 'stripe', d(-18), 'pro', 'active');
  await history('fay', 'stripe', d(-8), 'pro', 'past_due', d(-3, 12));
  await user('gus', d(-45)); // a team seat: granted, not paying
  await history('gus', 'seat', d(-40), 'pro', 'active');
  await user('mo', d(-44)); // a manual grant: not paying
  await history('mo', 'manual', d(-40), 'pro', 'manual');
  await user('tia', d(-12)); // a trial that ends: never paying
  await history('tia', 'stripe', d(-12), 'pro', 'trialing');
  await history('tia', 'stripe', d(-2), 'pro', 'canceled');
  await user('hal', d(-30)); // starts at exactly 00:00 UTC on a Monday
  await history('hal', 'stripe', stories.midnightStart, 'basic', 'active');
  await user('ida', d(-200)); // stops at exactly 00:00 UTC on the 1st of a month
  await history('ida', 'stripe', d(-190), 'pro', 'active');
  await history('ida', 'stripe', stories.monthStart, 'pro', 'canceled');
  await user('del', d(-150)); // the subscription row deleted
  await history('del', 'subscription', d(-140), 'pro', 'active');
  await history('del', 'deleted', d(-100), null, null);
  await user('gum', d(-60)); // a license that expires
  await history('gum', 'gumroad', d(-58), 'pro', 'active', d(-15, 6));
  await user('kim', d(-3)); // starts today at 00:00 UTC
  await history('kim', 'stripe', d(0), 'pro', 'active');
  await user('lee', d(-89)); // signed up at 00:00 UTC on the 90-day window's first day; leaves earlier today
  await history('lee', 'stripe', d(-88), 'pro', 'active');
  await history('lee', 'stripe', new Date(T0 + Math.floor((now.getTime() - T0) / 2)), 'pro', 'canceled');
  await user('late', d(-70)); // pays 35 days after signing up: converted within 90 days, not 30
  await history('late', 'stripe', d(-35), 'basic', 'active');
  await user('xss', d(-6, 5)); // a name that is markup: never shown by the series, counted as a sign-up
  for (let i = 0; i < 12; i++) await user(`free${i}`, d(-(i * 9 + 1), i)); // sign-ups who never pay

  return {
    now,
    today: new Date(T0).toISOString().slice(0, 10),
    users,
    rows,
    prices,
    stories,
    payingJustBefore(key, b) {
      return paidIntervals(rows.get(key)!, prices).some(([start, end]) => start < b && b <= end);
    },
    paidWithin(key, from, to) {
      return paidIntervals(rows.get(key)!, prices).some(([start, end]) => start <= to && end > from);
    },
  };
}

// ---- what the series must show, computed from the model alone ----

/** Period starts of a window, computed day by day (independently of series.ts). */
export function seriesStarts(now: Date, days: number, unit: SeriesUnit): number[] {
  const today = Date.parse(`${now.toISOString().slice(0, 10)}T00:00:00Z`);
  const first = today - (days - 1) * DAY;
  const out: number[] = [];
  for (let t = first - 40 * DAY; t <= today; t += DAY) {
    const d = new Date(t);
    const isStart = unit === 'day' || (unit === 'week' && d.getUTCDay() === 1) || (unit === 'month' && d.getUTCDate() === 1);
    if (!isStart) continue;
    // The period holding the first day, and every later one.
    const next = unit === 'day' ? t + DAY : unit === 'week' ? t + 7 * DAY : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    if (next > first) out.push(t);
  }
  return out;
}

/** The figures of each period, from the model alone. */
export function expectedSeries(model: SeriesModel, now: Date, days: number, unit: SeriesUnit, within: number) {
  const s = seriesStarts(now, days, unit);
  const bounds = [...s, now.getTime()];
  const paying = (b: number) => new Set(model.users.filter((u) => model.payingJustBefore(u.key, b)).map((u) => u.key));
  const at = bounds.map(paying);
  return s.map((start, i) => {
    const before = at[i]!;
    const after = at[i + 1]!;
    const signed = model.users.filter((u) => u.createdAt.getTime() >= start && (i + 1 < s.length ? u.createdAt.getTime() < s[i + 1]! : u.createdAt.getTime() <= now.getTime()));
    return {
      start: new Date(start).toISOString().slice(0, 10),
      payingAtStart: before.size,
      newPaying: [...after].filter((k) => !before.has(k)).length,
      churned: [...before].filter((k) => !after.has(k)).length,
      payingAtEnd: after.size,
      signUps: signed.length,
      converted: signed.filter((u) => model.paidWithin(u.key, u.createdAt.getTime(), u.createdAt.getTime() + within * DAY)).length,
    };
  });
}

