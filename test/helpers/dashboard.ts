// A known history for the dashboard: named users with a story each (an upgrade after a denial,
// one too late for the funnel's window, a lapsed subscription, an account on four devices), a
// deterministic crowd, and one user who goes through the real API today (consume until denied,
// then a plan). Returns the model it wrote, from which the tests compute what every chart must
// show. Used by test/dashboard*.test.ts and scripts/dashboard-screenshot.ts.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Database } from '../../src/core/db.ts';
import { createPluginAuth } from '../../src/auth.ts';
import { random } from './stripe.ts';
import { TOKEN_SECRET } from './secrets.ts';


export type Reason = 'ok' | 'limit_reached' | 'batch_too_large';

export interface SeedUser {
  key: string;
  id: string;
  email: string;
  createdAt: Date;
}
export interface SeedCall {
  userKey: string;
  action: string;
  at: Date;
  allowed: boolean;
  reason: Reason;
  plan: string;
}
export interface SeedPlanEvent {
  userKey: string;
  at: Date;
  plan: string;
  status: string;
  periodEnd: Date | null;
}
export interface SeedToken {
  userKey: string;
  tokenId: string;
  device: string | null;
  createdAt: Date;
  expiresAt: Date;
  revoked: boolean;
}
export interface SeedModel {
  now: Date;
  today: string;
  users: SeedUser[];
  calls: SeedCall[];
  planEvents: SeedPlanEvent[];
  tokens: SeedToken[];
  prices: Record<string, number>;
  limits: Record<string, { perDay: number; batch: number; daily: boolean }>;
}

const DAY = 86_400_000;


export const utcDate = (d: Date) => d.toISOString().slice(0, 10);

/** Does this plan event grant access at t (the rule of public.subscription_grants_access)? */
export function grantsAt(e: { status: string; periodEnd: Date | null }, t: Date): boolean {
  if (e.status === 'active' || e.status === 'trialing') return true;
  if (e.status === 'past_due') return e.periodEnd !== null && e.periodEnd > t;
  if (e.status === 'manual') return e.periodEnd === null || e.periodEnd > t;
  return false;
}

/** The plan in force for a user at t by the model: the latest event at or before t, if it grants. */
export function planAt(model: Pick<SeedModel, 'planEvents'>, userKey: string, t: Date): { plan: string; status: string } | null {
  const events = model.planEvents.filter((e) => e.userKey === userKey && e.at <= t).sort((a, b) => a.at.getTime() - b.at.getTime());
  const last = events.at(-1);
  return last && grantsAt(last, t) ? { plan: last.plan, status: last.status } : null;
}

export async function seedDashboardHistory(db: Database, options: { crowd?: number; seed?: number } = {}): Promise<SeedModel> {
  const crowd = options.crowd ?? 12;
  const rnd = random(options.seed ?? 16);
  const [clock] = await db.query<{ now: Date }>('SELECT now() AS now');
  const now = new Date(clock!.now);
  const today0 = Date.parse(`${utcDate(now)}T00:00:00Z`);
  // A time of the seeded history; one still to come today is moved into the last quarter hour before
  // now - 60 s, in the same order (24 hours into 14.4 minutes). Cutting them all to now - 60 s, as
  // this once did, made ties early in the UTC day (a limit hit, the upgrade and the next calls at one
  // instant), which the model and SQL may break differently.
  const cut = now.getTime() - 60_000;
  const at = (day: number, hour: number) => {
    const t = today0 + day * DAY + hour * 3_600_000;
    return new Date(t <= cut ? t : cut - Math.max(0, today0 + DAY - t) / 100);
  };
  const plans = await db.query<{ plan_slug: string; price_monthly: number; limits: { resizesPerDay: number; batchSize: number; isDaily: boolean } }>(
    'SELECT plan_slug, price_monthly, limits FROM public.subscription_plans',
  );
  const prices = Object.fromEntries(plans.map((p) => [p.plan_slug, p.price_monthly]));
  const limits = Object.fromEntries(plans.map((p) => [p.plan_slug, { perDay: p.limits.resizesPerDay, batch: p.limits.batchSize, daily: p.limits.isDaily }]));

  const model: SeedModel = { now, today: utcDate(now), users: [], calls: [], planEvents: [], tokens: [], prices, limits };
  const people: { key: string; email: string; createdAt: Date }[] = [
    { key: 'ada', email: 'ada@example.com', createdAt: at(-20, 9) },
    { key: 'bob', email: 'bob@example.com', createdAt: at(-15, 11) },
    { key: 'cy', email: 'cy@example.com', createdAt: at(-40, 8) },
    { key: 'dee', email: 'dee@example.com', createdAt: at(-60, 10) },
    { key: 'eve', email: 'eve@example.com', createdAt: at(-70, 14) },
    { key: 'fay', email: 'fay@example.com', createdAt: at(-45, 16) },
  ];
  for (let i = 0; i < crowd; i++) people.push({ key: `c${i}`, email: `designer${i + 1}@studio.example`, createdAt: at(-(3 + ((i * 7) % 85)), 7 + (i % 12)) });

  // Plan stories of the named users.
  const event = (userKey: string, time: Date, plan: string, status: string, periodEnd: Date | null = null) =>
    model.planEvents.push({ userKey, at: time, plan, status, periodEnd });
  event('ada', at(-8, 10), 'pro', 'active'); // hit the free limit on day -9, upgraded a day later
  event('cy', at(-5, 12), 'basic', 'active'); // hit on day -20: upgraded 15 days later
  event('dee', at(-60, 10), 'basic', 'active');
  event('dee', at(-1, 9), 'pro', 'active'); // hit basic's limit on day -2, upgraded the next day
  event('eve', at(-70, 14), 'enterprise', 'manual');
  event('fay', at(-45, 16), 'pro', 'active');
  event('fay', at(-4, 8), 'pro', 'past_due', at(-3, 12)); // payment failed; access ended on day -3

  // Scripted calls of the named users.
  const call = (userKey: string, action: string, time: Date, allowed: boolean, reason: Reason, plan: string) =>
    model.calls.push({ userKey, action, at: time, allowed, reason, plan });
  call('ada', 'resize', at(-10, 10), true, 'ok', 'free');
  call('ada', 'resize', at(-10, 11), true, 'ok', 'free');
  call('ada', 'resize', at(-9, 9), false, 'limit_reached', 'free');
  call('ada', 'resize', at(-9, 9.5), false, 'limit_reached', 'free');
  for (let d = -7; d <= -1; d++) for (let k = 0; k < 3; k++) call('ada', 'resize', at(d, 9 + k), true, 'ok', 'pro');
  call('bob', 'resize', at(-5, 13), true, 'ok', 'free');
  call('bob', 'resize', at(-5, 14), true, 'ok', 'free');
  call('bob', 'resize', at(-5, 15), false, 'limit_reached', 'free');
  call('bob', 'resize', at(-4, 10), false, 'limit_reached', 'free');
  call('cy', 'resize', at(-21, 10), true, 'ok', 'free');
  call('cy', 'resize', at(-21, 11), true, 'ok', 'free');
  call('cy', 'resize', at(-20, 10), false, 'limit_reached', 'free');
  call('cy', 'resize', at(-3, 10), true, 'ok', 'basic');
  for (let d = -14; d <= -1; d++) {
    const plan = d >= -1 ? 'pro' : 'basic';
    for (let k = 0; k < 3; k++) call('dee', 'resize', at(d, 8 + k), true, 'ok', plan);
    call('dee', 'export', at(d, 12), true, 'ok', plan);
  }
  call('dee', 'resize', at(-2, 12), true, 'ok', 'basic');
  call('dee', 'resize', at(-2, 13), false, 'limit_reached', 'basic');
  call('dee', 'resize', at(-2, 14), false, 'batch_too_large', 'basic');
  for (let d = -50; d <= -1; d++) {
    for (let k = 0; k < 4 + (Math.abs(d) % 5); k++) call('eve', 'resize', at(d, 8 + k), true, 'ok', 'enterprise');
    if (d % 3 === 0) call('eve', 'export', at(d, 15), true, 'ok', 'enterprise');
  }
  for (let d = -45; d <= -1; d++) {
    const granted = planAt(model, 'fay', at(d, 12));
    const plan = granted?.plan ?? 'free';
    call('fay', 'resize', at(d, 12), plan !== 'free', plan !== 'free' ? 'ok' : 'limit_reached', plan);
  }

  // The crowd: every call decided by the plan in force, as consume_usage would.
  const used = new Map<string, number>(); // user|day (daily) or user|all (lifetime) -> resizes counted
  for (let i = 0; i < crowd; i++) {
    const p = people[6 + i]!;
    const kind = i % 10;
    if (kind >= 6 && kind <= 7) event(p.key, p.createdAt, 'basic', 'active');
    if (kind === 8) event(p.key, p.createdAt, 'pro', 'active');
    if (kind === 9) event(p.key, p.createdAt, 'enterprise', i % 20 === 9 ? 'manual' : 'active');
    const created = Math.floor((p.createdAt.getTime() - today0) / DAY);
    let upgradeDay: number | null = null;
    for (let d = created; d <= 0; d++) {
      const recency = 1 - Math.abs(d) / 100;
      // Free users who hit the limit come back less often.
      const gaveUp = upgradeDay === null && model.calls.some((c) => c.userKey === p.key && c.reason === 'limit_reached');
      if (rnd() > (0.18 + 0.35 * recency) * (gaveUp ? 0.3 : 1)) continue;
      const n = 1 + Math.floor(rnd() * 5);
      for (let k = 0; k < n; k++) {
        const time = at(d, 8 + k * 1.5 + rnd());
        if (time <= p.createdAt) continue;
        const action = rnd() < 0.2 ? 'export' : 'resize';
        const plan = planAt(model, p.key, time)?.plan ?? 'free';
        if (action !== 'resize') {
          call(p.key, action, time, true, 'ok', plan);
          continue;
        }
        const limit = limits[plan]!;
        const bucket = `${p.key}|${limit.daily ? utcDate(time) : 'all'}`;
        const sofar = limit.daily ? (used.get(bucket) ?? 0) : model.calls.filter((c) => c.userKey === p.key && c.action === 'resize' && c.allowed).length;
        const items = rnd() < 0.08 ? 50 : 1;
        if (limit.perDay !== -1 && sofar + 1 > limit.perDay) {
          call(p.key, 'resize', time, false, 'limit_reached', plan);
          if (plan === 'free' && i % 10 < 2 && upgradeDay === null && d < -1) {
            upgradeDay = d + 1 + (i % 4);
            if (upgradeDay <= 0) event(p.key, at(upgradeDay, 10 + (i % 5)), i % 3 === 0 ? 'pro' : 'basic', 'active');
          }
        } else if (limit.batch !== -1 && items > limit.batch) {
          call(p.key, 'resize', time, false, 'batch_too_large', plan);
        } else {
          call(p.key, 'resize', time, true, 'ok', plan);
          used.set(bucket, sofar + 1);
        }
      }
    }
  }

  // Write users, subscriptions (in time order: the trigger records each change), calls, counters.
  for (const p of people) {
    const [row] = await db.query<{ id: string }>(
      'INSERT INTO public.users (email, name, created_at, updated_at) VALUES ($1::varchar, $2::varchar, $3::timestamptz, $3::timestamptz) RETURNING id',
      [p.email, p.key.length <= 3 && !p.key.startsWith('c') ? p.key[0]!.toUpperCase() + p.key.slice(1) : `Designer ${Number(p.key.slice(1)) + 1}`, p.createdAt],
    );
    model.users.push({ key: p.key, id: row!.id, email: p.email, createdAt: p.createdAt });
  }
  const idOf = (key: string) => model.users.find((u) => u.key === key)!.id;
  model.planEvents.sort((a, b) => a.at.getTime() - b.at.getTime());
  const seen = new Set<string>();
  for (const e of model.planEvents) {
    const params = [idOf(e.userKey), e.plan, e.status, e.periodEnd, e.at];
    if (!seen.has(e.userKey)) {
      seen.add(e.userKey);
      await db.query(
        `INSERT INTO public.user_subscriptions (user_id, plan_id, status, current_period_end, created_at, updated_at)
         SELECT $1::uuid, p.id, $3::varchar, $4::timestamptz, $5::timestamptz, $5::timestamptz FROM public.subscription_plans p WHERE p.plan_slug = $2::varchar`,
        params,
      );
    } else {
      await db.query(
        `UPDATE public.user_subscriptions s SET plan_id = p.id, status = $3::varchar, current_period_end = $4::timestamptz, updated_at = $5::timestamptz
           FROM public.subscription_plans p WHERE p.plan_slug = $2::varchar AND s.user_id = $1::uuid`,
        params,
      );
    }
  }
  const calls = [...model.calls].sort((a, b) => a.at.getTime() - b.at.getTime());
  await db.query(
    `INSERT INTO public.plugin_usage (user_id, action, items, allowed, reason, plan_slug, created_at)
     SELECT u, a, 1, ok, r, p, t FROM unnest($1::uuid[], $2::varchar[], $3::boolean[], $4::varchar[], $5::varchar[], $6::timestamptz[]) AS x(u, a, ok, r, p, t)`,
    [calls.map((c) => idOf(c.userKey)), calls.map((c) => c.action), calls.map((c) => c.allowed), calls.map((c) => c.reason), calls.map((c) => c.plan), calls.map((c) => c.at.toISOString())],
  );
  const counters = new Map<string, number>();
  for (const c of calls) if (c.allowed) counters.set(`${c.userKey}|${c.action}|${utcDate(c.at)}`, (counters.get(`${c.userKey}|${c.action}|${utcDate(c.at)}`) ?? 0) + 1);
  const keys = [...counters.keys()].map((k) => k.split('|') as [string, string, string]);
  await db.query(
    `INSERT INTO public.daily_usage_summary (user_id, action, usage_date, count)
     SELECT u, a, d, n FROM unnest($1::uuid[], $2::varchar[], $3::date[], $4::integer[]) AS x(u, a, d, n)`,
    [keys.map((k) => idOf(k[0])), keys.map((k) => k[1]), keys.map((k) => k[2]), keys.map((k) => counters.get(k.join('|'))!)],
  );

  // Tokens: eve on four devices (possible sharing), ada on two, bob's are revoked or expired. A
  // device is an id (sql/025): one per (user, name) here, as one install signing in again keeps it.
  const deviceIds = new Map<string, string>();
  const token = async (userKey: string, device: string | null, created: Date, expires: Date, revoked: boolean) => {
    const deviceKey = `${userKey}|${device ?? ''}`;
    if (!deviceIds.has(deviceKey)) deviceIds.set(deviceKey, randomUUID());
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO public.plugin_tokens (user_id, token_hash, device_name, created_at, expires_at, revoked_at, revoked_reason, device_id)
       VALUES ($1::uuid, $2::char(64), $3::varchar, $4::timestamptz, $5::timestamptz, $6::timestamptz, $7::varchar, $8::uuid) RETURNING id`,
      [idOf(userKey), createHash('sha256').update(randomBytes(16)).digest('hex'), device, created, expires, revoked ? now : null, revoked ? 'lost laptop' : null, deviceIds.get(deviceKey)],
    );
    model.tokens.push({ userKey, tokenId: row!.id, device, createdAt: created, expiresAt: expires, revoked });
  };
  const soon = new Date(now.getTime() + 20 * DAY);
  for (const device of ['MacBook Pro', 'iMac studio', 'Windows PC', 'Linux laptop']) await token('eve', device, at(-12, 9), soon, false);
  await token('eve', 'MacBook Pro', at(-11, 9), soon, false);
  await token('ada', 'MacBook Air', at(-8, 11), soon, false);
  await token('ada', 'Office PC', at(-6, 11), soon, false);
  await token('bob', 'Chromebook', at(-5, 12), soon, true);
  await token('bob', 'Old laptop', at(-14, 12), at(-2, 12), false);
  await token('dee', 'MacBook Pro', at(-30, 12), soon, false);
  for (let i = 0; i < crowd; i++) {
    const devices = i % 7 === 3 ? 3 : 1 + (i % 2);
    for (let k = 0; k < devices; k++) await token(`c${i}`, ['MacBook', 'Desktop', 'Laptop'][k]!, at(-(2 + (i % 9)), 10), soon, false);
  }

  // One user through the real API, today: two free resizes, a denial, then a plan and a token.
  const auth = createPluginAuth(db, { tokenSecret: TOKEN_SECRET });
  const [gus] = await db.query<{ id: string; created_at: Date }>(
    `INSERT INTO public.users (email, name) VALUES ('gus@example.com', 'Gus') RETURNING id, created_at`,
  );
  model.users.push({ key: 'gus', id: gus!.id, email: 'gus@example.com', createdAt: new Date(gus!.created_at) });
  for (let k = 0; k < 3; k++) await auth.usage.consume(gus!.id, 'resize');
  // The model holds times to the millisecond, the database to the microsecond: a plan assigned in
  // the same millisecond as the denial is after it in SQL and not in the model (warm connections
  // make that common). The clock moves on first.
  await new Promise((resolve) => setTimeout(resolve, 2));
  await auth.subscriptions.assignPlan(gus!.id, 'basic');
  const issued = await auth.tokens.issue(gus!.id, { deviceName: 'Figma desktop' });
  const logged = await db.query<{ action: string; created_at: Date; allowed: boolean; reason: Reason; plan_slug: string }>(
    'SELECT action, created_at, allowed, reason, plan_slug FROM public.plugin_usage WHERE user_id = $1::uuid ORDER BY id',
    [gus!.id],
  );
  for (const r of logged) call('gus', r.action, new Date(r.created_at), r.allowed, r.reason, r.plan_slug);
  const [sub] = await db.query<{ updated_at: Date; current_period_end: Date | null }>('SELECT updated_at, current_period_end FROM public.user_subscriptions WHERE user_id = $1::uuid', [gus!.id]);
  event('gus', new Date(sub!.updated_at), 'basic', 'manual', sub!.current_period_end);
  const [t] = await db.query<{ created_at: Date; expires_at: Date }>('SELECT created_at, expires_at FROM public.plugin_tokens WHERE id = $1::uuid', [issued.tokenId]);
  model.tokens.push({ userKey: 'gus', tokenId: issued.tokenId, device: 'Figma desktop', createdAt: new Date(t!.created_at), expiresAt: new Date(t!.expires_at), revoked: false });
  return model;
}

// ---- what the dashboard must show, computed from the model alone ----

export interface Expected {
  dates: string[];
  /** 'date|action' -> [allowed, denied] */
  calls: Map<string, [number, number]>;
  users: { date: string; active: number; newUsers: number; hitLimit: number }[];
  funnel: { hitLimit: number; upgraded: number; stillPaying: number };
  planMix: { date: string; users: Record<string, number>; paying: Record<string, number> }[];
  devices: { count: number; byDevices: number; byTokens: number }[];
  sharing: string[];
  top: { email: string; used: number; denied: number; calls: number }[];
}

const addDays = (date: string, n: number) => utcDate(new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY));

export function expectOverview(model: SeedModel, { days, within = 7, now = new Date() }: { days: number; within?: number; now?: Date }): Expected {
  const to = utcDate(now);
  const from = addDays(to, -(days - 1));
  const dates = Array.from({ length: days }, (_, i) => addDays(from, i));
  const inRange = model.calls.filter((c) => utcDate(c.at) >= from && utcDate(c.at) <= to);
  const calls = new Map<string, [number, number]>();
  for (const c of inRange) {
    const k = `${utcDate(c.at)}|${c.action}`;
    const v = calls.get(k) ?? [0, 0];
    v[c.allowed ? 0 : 1]++;
    calls.set(k, v);
  }
  const users = dates.map((date) => ({
    date,
    active: new Set(inRange.filter((c) => utcDate(c.at) === date).map((c) => c.userKey)).size,
    newUsers: model.users.filter((u) => utcDate(u.createdAt) === date).length,
    hitLimit: new Set(inRange.filter((c) => utcDate(c.at) === date && c.reason === 'limit_reached').map((c) => c.userKey)).size,
  }));
  const firsts = new Map<string, SeedCall>();
  for (const c of [...inRange].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    if (c.reason === 'limit_reached' && !firsts.has(c.userKey)) firsts.set(c.userKey, c);
  }
  const upgraded = [...firsts.values()].filter((hit) =>
    model.planEvents.some((e) => e.userKey === hit.userKey && e.at > hit.at && e.at.getTime() <= hit.at.getTime() + within * DAY
      && grantsAt(e, e.at) && model.prices[e.plan]! > (model.prices[hit.plan] ?? 0)));
  const stillPaying = upgraded.filter((hit) => {
    const p = planAt(model, hit.userKey, now);
    return p !== null && model.prices[p.plan]! > 0;
  });
  const slugs = Object.keys(model.prices);
  const planMix = dates.map((date) => {
    const t = new Date(Math.min(Date.parse(`${addDays(date, 1)}T00:00:00Z`), now.getTime()));
    const usersOn = Object.fromEntries(slugs.map((s) => [s, 0])) as Record<string, number>;
    const paying = Object.fromEntries(slugs.map((s) => [s, 0])) as Record<string, number>;
    for (const u of model.users.filter((x) => x.createdAt <= t)) {
      const p = planAt(model, u.key, t);
      usersOn[p?.plan ?? 'free']!++;
      if (p && (p.status === 'active' || p.status === 'past_due')) paying[p.plan]!++;
    }
    return { date, users: usersOn, paying };
  });
  const live = model.tokens.filter((t) => !t.revoked && t.expiresAt > now);
  const per = new Map<string, { devices: Set<string>; tokens: number }>();
  for (const t of live) {
    const v = per.get(t.userKey) ?? { devices: new Set<string>(), tokens: 0 };
    v.devices.add(t.device ?? '');
    v.tokens++;
    per.set(t.userKey, v);
  }
  const devices = [1, 2, 3, 4, 5].map((count) => ({
    count,
    byDevices: [...per.values()].filter((v) => Math.min(v.devices.size, 5) === count).length,
    byTokens: [...per.values()].filter((v) => Math.min(v.tokens, 5) === count).length,
  }));
  const emailOf = (key: string) => model.users.find((u) => u.key === key)!.email;
  const idOf = (key: string) => model.users.find((u) => u.key === key)!.id;
  const sharing = [...per.entries()].filter(([, v]) => v.devices.size >= 3).map(([k]) => emailOf(k)).sort();
  const byUser = new Map<string, { used: number; denied: number }>();
  for (const c of inRange) {
    const v = byUser.get(c.userKey) ?? { used: 0, denied: 0 };
    if (c.allowed) v.used++;
    else v.denied++;
    byUser.set(c.userKey, v);
  }
  const top = [...byUser.entries()]
    .map(([k, v]) => ({ key: k, email: emailOf(k), used: v.used, denied: v.denied, calls: v.used + v.denied }))
    .sort((a, b) => b.calls - a.calls || (idOf(a.key) < idOf(b.key) ? -1 : 1))
    .slice(0, 10)
    .map(({ email, used, denied, calls: n }) => ({ email, used, denied, calls: n }));
  return { dates, calls, users, funnel: { hitLimit: firsts.size, upgraded: upgraded.length, stillPaying: stillPaying.length }, planMix, devices, sharing, top };
}
