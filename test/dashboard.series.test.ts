// Churn and conversion over time (src/dashboard/series.ts), on both databases: the series equals
// the figures computed here, separately, from the seeded history (users paying, leaving and coming
// back, refunds, a downgrade to free, a lapse, trials, manual grants and seats that do not pay,
// several sources at once), by day, week and month; changes at exactly midnight UTC; the window's
// first and last periods; an empty database; hostile window parameters (typed codes, HTTP 400).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { readSeries, type Series, type SeriesUnit } from '../src/dashboard/series.ts';
import { createDashboardHandler } from '../src/dashboard/handler.ts';
import { ValidationError } from '../src/core/errors.ts';
import type { Database } from '../src/core/db.ts';
import { SERIES_XSS, expectedSeries as expected, seedSeries, type SeriesModel } from './helpers/series.ts';

const DAY = 86_400_000;

async function check(db: Database, model: SeriesModel, days: number, unit: SeriesUnit, within = 30) {
  const series = await readSeries(db, { days, unit, withinDays: within });
  const want = expected(model, series.now, days, unit, within);
  const got = series.periods.map((p) => ({ start: p.start, payingAtStart: p.payingAtStart, newPaying: p.newPaying, churned: p.churned, payingAtEnd: p.payingAtEnd, signUps: p.signUps, converted: p.converted }));
  assert.deepEqual(got, want, `${days} days by ${unit}`);
  for (const [i, p] of series.periods.entries()) {
    if (i + 1 < series.periods.length) assert.equal(p.payingAtEnd, series.periods[i + 1]!.payingAtStart, 'one period ends where the next starts');
    assert.equal(p.churnRate, p.payingAtStart > 0 ? p.churned / p.payingAtStart : null);
    assert.equal(p.conversionRate, p.signUps > 0 ? p.converted / p.signUps : null);
  }
  return series;
}

for (const dialect of DIALECTS) {
  describe(`churn and conversion over time [${dialect}]`, () => {
    test('the series equals the figures computed from the seeded history, by day, week and month', () =>
      withDatabase(dialect, async ({ db }) => {
        const model = await seedSeries(db);
        for (const [days, unit] of [[7, 'day'], [30, 'day'], [90, 'week'], [180, 'week'], [365, 'month'], [30, 'week'], [90, 'day'], [30, 'month'], [7, 'week'], [7, 'month'], [365, 'day'], [180, 'month']] as const) {
          await check(db, model, days, unit);
        }
        await check(db, model, 90, 'week', 7);
        await check(db, model, 365, 'month', 90);
      }));

    test('each story alone, by hand: a blip inside a week, midnight changes, two sources at once, non-paying grants, the last period', () =>
      withDatabase(dialect, async ({ db }) => {
        const only = async (keys: string[]) => {
          await db.query('DELETE FROM public.users');
          return seedSeries(db, { only: keys });
        };
        const at = (series: Series, t: number) => series.periods.filter((p) => Date.parse(`${p.start}T00:00:00Z`) <= t).length - 1;
        const totals = (series: Series) => ({ newPaying: series.periods.reduce((a, p) => a + p.newPaying, 0), churned: series.periods.reduce((a, p) => a + p.churned, 0) });

        // dee starts 70 days ago, leaves on a Wednesday and is back on the Friday: by week, new once
        // and never churned; by day, churned on the Wednesday and new again on the Friday.
        let model = await only(['dee']);
        let week = await readSeries(db, { days: 90, unit: 'week' });
        const started = model.rows.get('dee')![0]!.at.getTime();
        assert.deepEqual(week.periods.map((p, i) => [i, p.churned, p.newPaying]).filter(([, c, n]) => c || n), [[at(week, started), 0, 1]]);
        const blipWeek = week.periods[at(week, model.stories.blipLeave.getTime())]!;
        assert.deepEqual([blipWeek.payingAtStart, blipWeek.payingAtEnd], [1, 1]);
        let day = await readSeries(db, { days: 90, unit: 'day' });
        const wed = at(day, model.stories.blipLeave.getTime());
        const fri = at(day, model.stories.blipReturn.getTime());
        assert.equal(fri - wed, 2);
        assert.deepEqual(day.periods.map((p, i) => [i, p.churned, p.newPaying]).filter(([, c, n]) => c || n), [[at(day, started), 0, 1], [wed, 1, 0], [fri, 0, 1]]);
        assert.equal(day.periods[wed + 1]!.payingAtStart, 0);

        // hal starts at exactly 00:00 UTC on a Monday: new in the week and on the day starting then,
        // not paying at their start. ida stops at exactly 00:00 UTC on the 1st: churned in the month
        // (and on the day) starting then, paying at their start.
        model = await only(['hal', 'ida']);
        week = await readSeries(db, { days: 90, unit: 'week' });
        const k = at(week, model.stories.midnightStart.getTime());
        assert.equal(week.periods[k]!.start, model.stories.midnightStart.toISOString().slice(0, 10));
        assert.deepEqual([week.periods[k]!.newPaying, week.periods[k - 1]!.newPaying, week.periods[k + 1]!.payingAtStart], [1, 0, 1]);
        const month = await readSeries(db, { days: 365, unit: 'month' });
        const m = at(month, model.stories.monthStart.getTime());
        assert.equal(month.periods[m]!.start, model.stories.monthStart.toISOString().slice(0, 10));
        assert.deepEqual([month.periods[m]!.churned, month.periods[m - 1]!.churned], [1, 0]);
        day = await readSeries(db, { days: 90, unit: 'day' });
        const first = at(day, model.stories.monthStart.getTime());
        if (first >= 0) assert.equal(day.periods[first]!.churned, 1);

        // eve pays through Figma, then Stripe too; the Figma grant lapses: one paying user, no churn.
        model = await only(['eve']);
        day = await readSeries(db, { days: 90, unit: 'day' });
        assert.deepEqual(totals(day), { newPaying: 1, churned: 0 });
        assert.equal(day.periods.at(-1)!.payingAtEnd, 1);
        assert.equal(day.periods[at(day, Date.parse(`${day.periods.at(-1)!.start}T00:00:00Z`) - 36 * DAY)]!.signUps, 1);

        // The window's last period: kim starts today at 00:00 UTC, lee leaves earlier today.
        model = await only(['kim', 'lee']);
        day = await readSeries(db, { days: 7, unit: 'day' });
        const last = day.periods.at(-1)!;
        assert.deepEqual([last.start, last.payingAtStart, last.newPaying, last.churned, last.payingAtEnd, last.complete], [model.today, 1, 1, 1, 1, false]);
        assert.equal(last.endsAt.getTime(), day.now.getTime());
        // lee signed up at exactly 00:00 UTC on the 90-day window's first day: a sign-up of the window's first day.
        const ninety = await readSeries(db, { days: 90, unit: 'day' });
        assert.deepEqual([ninety.periods[0]!.signUps, ninety.periods[0]!.converted, ninety.periods[0]!.complete], [1, 1, true]);

        // A seat, a manual grant, a trial: granted, never paying; still sign-ups.
        model = await only(['gus', 'mo', 'tia']);
        day = await readSeries(db, { days: 90, unit: 'day' });
        assert.deepEqual(totals(day), { newPaying: 0, churned: 0 });
        assert.ok(day.periods.every((p) => p.payingAtStart === 0));
        assert.equal(day.periods.reduce((a, p) => a + p.signUps, 0), 3);
        assert.equal(day.periods.reduce((a, p) => a + p.converted, 0), 0);

        // The latest Figma row is in force until figma_users.grant_until now (each check moves it),
        // not until the end it had when it was written. (The link's own history trigger is held
        // off while the row is written, so that the back-dated row stays the latest.)
        await db.query('DELETE FROM public.users');
        const T0 = Date.parse(`${model.today}T00:00:00Z`);
        const [fig] = await db.query<{ id: string }>(
          `INSERT INTO public.users (email, created_at) VALUES ('fig@series.example', $1::timestamptz) RETURNING id`, [new Date(T0 - 50 * DAY)]);
        await db.query(
          `INSERT INTO public.user_plan_history (user_id, plan_id, status, current_period_end, grants_access, source, changed_at)
           SELECT $1::uuid, p.id, 'PAID', $2::timestamptz, true, 'figma', $3::timestamptz FROM public.subscription_plans AS p WHERE p.plan_slug = 'pro'`,
          [fig!.id, new Date(T0 - 30 * DAY), new Date(T0 - 40 * DAY + 3_600_000)]);
        await db.exec('ALTER TABLE public.figma_users DISABLE TRIGGER plugin_auth_figma_history_write');
        try {
          await db.query(
            `INSERT INTO public.figma_users (figma_user_id, user_id, payment_status, checked_at, grant_until)
             VALUES ('fig-1', $1::uuid, 'PAID', $2::timestamptz, $3::timestamptz)`,
            [fig!.id, new Date(T0 - 3 * DAY), new Date(T0 - 2 * DAY + 3_600_000)]);
        } finally {
          await db.exec('ALTER TABLE public.figma_users ENABLE TRIGGER plugin_auth_figma_history_write');
        }
        day = await readSeries(db, { days: 90, unit: 'day' });
        const dayOf = (t: number) => day.periods.findIndex((p) => p.start === new Date(t).toISOString().slice(0, 10));
        assert.deepEqual(day.periods.map((p, i) => [i, p.newPaying, p.churned]).filter(([, n, c]) => n || c), [[dayOf(T0 - 40 * DAY), 1, 0], [dayOf(T0 - 2 * DAY), 0, 1]]);

        // Paid before every window and still paying: in the first period's paying at start, whatever the window.
        await only(['jon']);
        for (const days of [7, 30, 90, 180, 365] as const) {
          const s = await readSeries(db, { days });
          assert.deepEqual([s.periods[0]!.payingAtStart, s.periods.at(-1)!.payingAtEnd, totals(s).churned], [1, 1, 0], `${days}`);
        }
        // Conversion within N days: late pays 35 days after signing up.
        await only(['late']);
        const within30 = await readSeries(db, { days: 90, unit: 'week', withinDays: 30 });
        const within90 = await readSeries(db, { days: 90, unit: 'week', withinDays: 90 });
        assert.equal(within30.periods.reduce((a, p) => a + p.converted, 0), 0);
        assert.equal(within90.periods.reduce((a, p) => a + p.converted, 0), 1);
      }));

    test('an empty database: every period is there, all zero', () =>
      withDatabase(dialect, async ({ db }) => {
        for (const [days, unit, n] of [[7, 'day', 7], [30, 'day', 30]] as const) {
          const s = await readSeries(db, { days, unit });
          assert.equal(s.periods.length, n);
          assert.ok(s.periods.every((p) => p.payingAtStart === 0 && p.newPaying === 0 && p.churned === 0 && p.signUps === 0 && p.churnRate === null && p.conversionRate === null));
        }
        const months = await readSeries(db, { days: 365 });
        assert.equal(months.unit, 'month');
        assert.ok(months.periods.length === 12 || months.periods.length === 13);
      }));

    test('hostile window parameters: typed codes; through the handler a 400 that echoes nothing', () =>
      withDatabase(dialect, async ({ db }) => {
        await assert.rejects(readSeries(db, { days: 8 }), (e: unknown) => e instanceof ValidationError && e.code === 'invalid_days');
        await assert.rejects(readSeries(db, { days: 90, unit: 'year' }), (e: unknown) => e instanceof ValidationError && e.code === 'invalid_period');
        await assert.rejects(readSeries(db, { days: 90, withinDays: 0 }), { code: 'invalid_within' });
        await assert.rejects(readSeries(db, { days: 90, withinDays: 91 }), { code: 'invalid_within' });
        await assert.rejects(readSeries(db, { days: Number.NaN }), { code: 'invalid_days' });
        const handler = createDashboardHandler(db, { authorize: () => true });
        for (const [query, code] of [
          ['days=abc', 'invalid_days'], ['days=8', 'invalid_days'], ['days=-7', 'invalid_days'], ['days=1e3', 'invalid_days'], ['days=99999999', 'invalid_days'],
          [`by=${encodeURIComponent(SERIES_XSS)}`, 'invalid_period'], ['by=DAY', 'invalid_period'], ['by=', 'invalid_period'],
          ['within=0', 'invalid_within'], ['within=91', 'invalid_within'], ['within=%27%3B--', 'invalid_within'],
        ] as const) {
          for (const path of ['/series', '/export/series.csv']) {
            const r = await handler(new Request(`http://127.0.0.1${path}?${query}`));
            assert.equal(r.status, 400, `${path}?${query}`);
            const body = await r.text();
            assert.match(body, new RegExp(code));
            assert.doesNotMatch(body, /<script>alert/);
          }
        }
        assert.equal((await handler(new Request('http://127.0.0.1/series?days=90&by=week&within=14'))).status, 200);
        assert.equal((await handler(new Request('http://127.0.0.1/series', { method: 'POST' }))).status, 405);
      }));
  });
}
