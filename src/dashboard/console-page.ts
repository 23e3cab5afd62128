// The console's HTML: search, the user page's console sections, each action's confirmation page,
// what failed, money, the audit log. Server-rendered, no script; every value escaped (h), every
// table followed by its CSV link where the console can export it.
import type { AuditRow, ConsoleAction, Failures, FoundUser, MoneyAmount, MoneySource, UserConsole } from './console.ts';
import type { PlanInfo, UserView } from './queries.ts';
import { dollars, iso, layout, table, type PageContext } from './page.ts';
import { escapeHtml as h } from './svg.ts';

const link = (ctx: PageContext, path: string, text: string, attrs = '') => `<a href="${h(`${ctx.base}${path}`)}"${attrs}>${h(text)}</a>`;
const csvLink = (ctx: PageContext, path: string) => `<a class="csv" href="${h(`${ctx.base}${path}`)}" download>CSV</a>`;
const badge = (kind: string, text = kind) => `<span class="badge ${h(kind)}">${h(text)}</span>`;
const userLink = (ctx: PageContext, id: string, text: string) => link(ctx, `/users/${id}`, text);
const emptyTable = (id: string, caption: string) => `<table id="${id}"><caption>${h(caption)}</caption><tbody></tbody></table>`;

export function renderSearch(ctx: PageContext, query: string, found: FoundUser[]): string {
  const rows = found.map((u) => [userLink(ctx, u.userId, u.email), h(u.name ?? '–'), h(u.figmaUserId ?? '–'), h(u.matched), `<code>${h(u.userId)}</code>`]);
  const body = `<section class="card wide" id="search" aria-labelledby="search-title"><h2 id="search-title">Find a user</h2>
<p class="def">By email, name or handle (contains), Figma user id, user id, license key prefix (its first 4 to 8 characters), Stripe customer or subscription id (exact).</p>
${query === '' ? '<p>Type in the search box above.</p>' : found.length
    ? `${table('table-search', `${found.length} user${found.length === 1 ? '' : 's'} for “${query}”`, ['Email', 'Name', 'Figma id', 'Matched by', 'User id'], rows, [0, 1, 2, 3, 4])}${csvLink(ctx, `/export/search.csv?q=${encodeURIComponent(query)}`)}`
    : emptyTable('table-search', `No user for “${query}”.`)}
</section>`;
  return layout({ ...ctx, query }, 'find a user', body);
}

/** The console sections of a user's page: sources, devices, today, last requests, actions, audit. */
export function renderUserConsole(ctx: PageContext, v: UserView, c: UserConsole, options: { resync: boolean }): string {
  const u = v.user.id;
  const act = (action: ConsoleAction, text: string, subject?: string) =>
    link(ctx, `/users/${u}/actions/${action}${subject ? `?subject=${encodeURIComponent(subject)}` : ''}`, text, ` class="button" data-action="${h(action)}"${subject ? ` data-subject="${h(subject)}"` : ''}`);
  const s = c.subscription;
  const sources = `<dl class="facts" id="sources">
<dt>Subscription row</dt><dd>${s ? `${h(s.planSlug)} · ${h(s.status)}${s.cancelAtPeriodEnd ? ' · cancels at period end' : ''}${s.currentPeriodEnd ? ` · until ${h(iso(s.currentPeriodEnd))}` : ''}${s.trialEnd ? ` · trial ends ${h(iso(s.trialEnd))}` : ''}${s.quantity !== 1 ? ` · ${s.quantity} seats` : ''}` : '–'}</dd>
<dt>Stripe</dt><dd>${s?.stripeCustomerId ? `<code>${h(s.stripeCustomerId)}</code>` : '–'}${s?.stripeSubscriptionId ? ` · <code>${h(s.stripeSubscriptionId)}</code>` : ''}</dd>
<dt>Figma</dt><dd>${c.figma ? `<code>${h(c.figma.figmaUserId)}</code> · ${h(c.figma.paymentStatus)} · grant until ${h(iso(c.figma.grantUntil))}` : '–'}</dd>
<dt>Licenses</dt><dd>${c.licenses.length ? c.licenses.map((k) => `${h(k.provider)} ${h(k.keyPrefix)}… ${h(k.status)}`).join(', ') : '–'}</dd>
<dt>Seat</dt><dd>${c.seatHeld ? `member of ${userLink(ctx, c.seatHeld.ownerId, c.seatHeld.ownerEmail)} since ${h(iso(c.seatHeld.assignedAt))} ${act('remove_seat', 'Remove seat…', 'held')}` : '–'}</dd>
</dl>`;
  const licenseRows = c.licenses.flatMap((k) => {
    const head = [`${h(k.provider)} <code>${h(k.keyPrefix)}…</code>`, badge(k.status === 'active' ? 'active' : 'revoked', k.status), h(k.planSlug ?? '–'), licenseAmount(k.amount), h(k.productId), iso(k.expiresAt), iso(k.checkedAt), `${k.devices.length}`,
      k.status === 'disabled' ? '' : act('deactivate_license', 'Deactivate…', k.licenseId)];
    const devices = k.devices.map((d) => [`↳ ${h(d.deviceName)}`, d.live ? badge('active', 'lease live') : badge('expired', 'lease expired'), '', '', `<code>${h(d.deviceId)}</code>`, `lease ${iso(d.leaseEndsAt)}`, `${iso(d.activatedAt)} · seen ${iso(d.lastSeenAt)}`, '', act('revoke_device', 'Release device…', `${k.licenseId}:${d.deviceId}`)]);
    return [head, ...devices];
  });
  const licensesTable = licenseRows.length
    ? table('table-licenses', 'Licenses and the devices they are activated on (never the key: its first characters only)', ['License / device', 'Status / lease', 'Plan', 'Amount', 'Product / device id', 'Expires / lease ends', 'Checked / activated, last seen', 'Devices', ''], licenseRows, [0, 1, 2, 3, 4, 5, 6])
    : emptyTable('table-licenses', 'No license.');
  const membersTable = c.seatMembers.length
    ? table('table-seat-members', 'Members holding a seat of this user\'s team', ['Member', 'Since', ''], c.seatMembers.map((m) => [userLink(ctx, m.memberId, m.email), iso(m.assignedAt), act('remove_seat', 'Remove seat…', m.memberId)]), [0, 1])
    : '';
  const todayTable = c.today.length
    ? table('table-today', 'Today (UTC), per action', ['Action', 'Counted', 'Allowed', 'Denied', 'Refunded'], c.today.map((t) => [h(t.action), t.used, t.allowed, t.denied, t.refunded]))
    : emptyTable('table-today', 'No call today.');
  const requestsTable = c.requests.length
    ? table('table-requests', `The last ${c.requests.length} calls, newest first, with their outcome`, ['At', 'Action', 'Items', 'Outcome', 'Plan', 'Used / limit', 'Refunded'],
        c.requests.map((r) => [iso(r.at), h(r.action), r.items, r.allowed ? badge('allowed', 'allowed') : badge('denied', r.reason), h(r.planSlug ?? '–'), r.used === null ? '–' : `${r.used} / ${r.limit === -1 ? '∞' : r.limit ?? '–'}`, r.refunded ? 'yes' : '']), [0, 1, 3, 4, 5, 6])
    : emptyTable('table-requests', 'No call recorded.');
  const refusals = c.refusals.length
    ? table('table-user-refusals', 'Refused sign-ins and sessions of this user', ['At', 'Route', 'Reason'], c.refusals.map((r) => [iso(r.at), h(r.route), h(r.reason)]), [0, 1, 2])
    : '';
  const auditTable = renderAuditTable(ctx, 'table-user-audit', 'Console actions on this user, newest first', c.audit);
  const actions = `<div class="actions">${act('grant_plan', 'Change or grant a plan…')}${act('extend_trial', 'Extend a trial…')}${act('refund_today', "Refund today's usage…")}${options.resync ? act('resync_stripe', 'Re-sync from Stripe…') : `<span class="button" aria-disabled="true" title="Needs the reconcileStripe option">Re-sync from Stripe (not configured)</span>`}</div>`;
  return `<section class="card wide" id="console" aria-labelledby="console-title"><h2 id="console-title">Every source of the plan</h2>${sources}${actions}
<p class="def">Last 30 days: ${c.last30.allowed} allowed, ${c.last30.denied} denied, ${c.last30.refunded} refunded, ${c.last30.used} counted.</p></section>
<section class="card" id="today" aria-labelledby="today-title"><h2 id="today-title">Usage today</h2>${todayTable}</section>
<section class="card wide" id="licenses" aria-labelledby="licenses-title"><h2 id="licenses-title">Licenses and devices</h2><p class="def">Releasing a device frees its activation here; deactivating a license stops it granting a plan.</p><div class="scroll">${licensesTable}</div>${membersTable}</section>
<section class="card wide" id="requests" aria-labelledby="requests-title"><h2 id="requests-title">Last requests${csvLink(ctx, `/export/requests.csv?user=${u}`)}</h2><div class="scroll">${requestsTable}</div>${refusals}</section>
<section class="card wide" id="user-audit" aria-labelledby="user-audit-title"><h2 id="user-audit-title">Audit</h2><div class="scroll">${auditTable}</div></section>`;
}

const ACTION_TEXT: Record<ConsoleAction, { title: string; button: string; explain: string }> = {
  grant_plan: { title: 'Change or grant a plan', button: 'Grant plan', explain: 'Replaces the subscription row with this plan (status manual), until the end of the chosen day (UTC), or with no end. A Stripe subscription row is replaced: its next webhook writes it back.' },
  extend_trial: { title: 'Extend a trial', button: 'Extend', explain: 'Moves the end of the plan granted until a date (status manual) by this many days, from its end or from now if it has ended.' },
  refund_today: { title: "Refund today's usage", button: 'Refund today', explain: "Gives back every call counted today (UTC): the log's rows are marked refunded and each takes one off its counter, so today's counters go to zero and the limits start over." },
  revoke_token: { title: 'Revoke a token', button: 'Revoke token', explain: 'The plugin on that device is signed out at its next request and must sign in again. This cannot be undone.' },
  revoke_device: { title: 'Release a device from a license', button: 'Release device', explain: 'Frees the activation of this device on the license here (the store keeps its own count until the plugin deactivates there).' },
  deactivate_license: { title: 'Deactivate a license', button: 'Deactivate license', explain: 'Sets the license to disabled: it no longer grants its plan. A later store webhook that says active enables it again.' },
  remove_seat: { title: 'Remove a seat', button: 'Remove seat', explain: 'Takes the seat back: the member loses the team plan (the next member waiting gets it).' },
  resync_stripe: { title: 'Re-sync from Stripe', button: 'Re-sync', explain: "Reads the user's subscription from Stripe and applies it, as a webhook would." },
};

export function renderActionConfirm(ctx: PageContext, v: UserView, action: ConsoleAction, subject: string | null, subjectText: string | null, csrf: string, plans: PlanInfo[]): string {
  const t = ACTION_TEXT[action];
  const fields =
    action === 'grant_plan'
      ? `<label>Plan<select name="plan" id="field-plan" required>${plans.map((p) => `<option value="${h(p.slug)}">${h(p.name)} (${h(p.slug)}${p.priceMonthly > 0 ? `, ${h(dollars(p.priceMonthly))}/mo` : ''})</option>`).join('')}</select></label>
<label>Until (last day, UTC; empty: no end)<input type="date" name="until" id="field-until"></label>`
      : action === 'extend_trial'
        ? '<label>Days to add<input type="number" name="days" id="field-days" min="1" max="366" value="7" required></label>'
        : '';
  const body = `<section class="card confirm" id="confirm" aria-labelledby="confirm-title">
<h2 id="confirm-title">${h(t.title)}?</h2>
<dl class="facts"><dt>User</dt><dd>${h(v.user.email)}</dd><dt>Plan now</dt><dd>${h(v.planNow.slug)} (${h(v.planNow.source)})</dd>${subjectText ? `<dt>Subject</dt><dd id="confirm-subject">${h(subjectText)}</dd>` : ''}</dl>
<p>${h(t.explain)} The action is written to the audit log with the state before and after.</p>
<form class="act" method="post" action="${h(`${ctx.base}/users/${v.user.id}/actions/${action}`)}">
<input type="hidden" name="csrf" value="${h(csrf)}">
<input type="hidden" name="confirm" value="yes">
${subject ? `<input type="hidden" name="subject" value="${h(subject)}">` : ''}
${fields}
<div><button type="submit" class="danger" id="confirm-action">${h(t.button)}</button> <a class="button" href="${h(`${ctx.base}/users/${v.user.id}`)}">Cancel</a></div>
</form>
</section>`;
  return layout(ctx, t.title.toLowerCase(), body);
}

function renderAuditTable(ctx: PageContext, id: string, caption: string, rows: AuditRow[]): string {
  if (rows.length === 0) return emptyTable(id, `${caption}: none.`);
  const pre = (x: unknown) => `<pre class="json">${h(JSON.stringify(x, null, 1) ?? 'null')}</pre>`;
  return table(id, caption, ['At', 'Actor', 'Action', 'User', 'Subject', 'Before', 'After'],
    rows.map((a) => [iso(a.at), h(a.actor), h(a.action), a.userId ? userLink(ctx, a.userId, a.userId.slice(0, 8)) : '–', h(a.subject ?? '–'), pre(a.before), pre(a.after)]), [0, 1, 2, 3, 4, 5, 6]);
}

export function renderAudit(ctx: PageContext, rows: AuditRow[]): string {
  const body = `<section class="card wide" id="audit" aria-labelledby="audit-title"><h2 id="audit-title">Audit log${csvLink(ctx, '/export/audit.csv')}</h2>
<p class="def">Every action taken from the console, newest first (the last 200): who, when, what, and the state before and after.</p>
<div class="scroll">${renderAuditTable(ctx, 'table-audit', 'Console actions', rows)}</div></section>`;
  return layout(ctx, 'audit log', body);
}

export function renderFailures(ctx: PageContext, f: Failures, days: number): string {
  const providers = ['stripe', 'lemonsqueezy', 'gumroad'];
  const outcomes = ['accepted', 'duplicate', 'ignored', 'refused'];
  const count = (p: string, o: string) => f.deliveries.find((d) => d.provider === p && d.outcome === o)?.n ?? 0;
  const deliveries = table('table-deliveries', `Webhook deliveries per provider, last ${days} days`, ['Provider', ...outcomes], providers.map((p) => [h(p), ...outcomes.map((o) => count(p, o))]));
  const refused = f.refusedDeliveries.length
    ? table('table-refused-deliveries', 'Refused deliveries, newest first (never the body or a signature)', ['At', 'Provider', 'Event id', 'Reason'], f.refusedDeliveries.map((r) => [iso(r.at), h(r.provider), h(r.eventId ?? '–'), badge('refused', r.reason)]), [0, 1, 2, 3])
    : emptyTable('table-refused-deliveries', 'No refused delivery.');
  const atRisk = f.atRisk.length
    ? table('table-at-risk', 'Subscriptions past due, unpaid, incomplete, or canceling at the end of the period', ['User', 'Plan', 'Status', 'Cancels', 'Period end'], f.atRisk.map((r) => [userLink(ctx, r.userId, r.email), h(r.planSlug), h(r.status), r.cancelAtPeriodEnd ? 'at period end' : '', iso(r.currentPeriodEnd)]), [0, 1, 2, 3, 4])
    : emptyTable('table-at-risk', 'No subscription at risk.');
  const signIns = f.signIns.length
    ? table('table-sign-ins', `Refused sign-ins and sessions by reason, last ${days} days`, ['Route', 'Reason', 'Refused', 'Last'], f.signIns.map((r) => [h(r.route), h(r.reason), r.n, iso(r.last)]), [0, 1, 3])
    : emptyTable('table-sign-ins', 'No refused sign-in.');
  const atLimit = f.atLimit.length
    ? table('table-at-limit', 'Users refused with limit_reached today (UTC)', ['User', 'Plan', 'Refused today', 'Last'], f.atLimit.map((r) => [userLink(ctx, r.userId, r.email), h(r.planSlug ?? '–'), r.denied, iso(r.last)]), [0, 1, 3])
    : emptyTable('table-at-limit', 'No user at the limit today.');
  const ranges = [7, 30, 90].map((d) => (d === days ? `<strong>${d} d</strong>` : link(ctx, `/failures?days=${d}`, `${d} d`))).join(' · ');
  const body = `<p>Range: ${ranges}</p><div class="grid">
<section class="card" id="webhooks" aria-labelledby="webhooks-title"><h2 id="webhooks-title">Webhook deliveries${csvLink(ctx, `/export/webhook-deliveries.csv?days=${days}`)}</h2><p class="def">Recorded by the plugin server for each delivery it answered.</p>${deliveries}<div class="scroll">${refused}</div></section>
<section class="card" id="sign-ins" aria-labelledby="sign-ins-title"><h2 id="sign-ins-title">Refused sign-ins${csvLink(ctx, `/export/sign-in-refusals.csv?days=${days}`)}</h2><p class="def">Sign-in routes refused, and plugin sessions refused (401) on any route, by error code.</p><div class="scroll">${signIns}</div></section>
<section class="card" id="at-risk" aria-labelledby="at-risk-title"><h2 id="at-risk-title">Subscriptions at risk${csvLink(ctx, '/export/at-risk.csv')}</h2><div class="scroll">${atRisk}</div></section>
<section class="card" id="at-limit" aria-labelledby="at-limit-title"><h2 id="at-limit-title">Users at their limit${csvLink(ctx, '/export/at-limit.csv')}</h2><div class="scroll">${atLimit}</div></section>
</div>`;
  return layout(ctx, `what failed, last ${days} days`, body);
}

/**
 * An amount in a currency's minor units, as text: "USD 12.34", "JPY 1,200". The currency's
 * decimals come from Intl (2 when it does not know the code). Callers escape the result.
 */
export function money(minor: number, currency: string): string {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en-US', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    digits = 2;
  }
  return `${currency} ${(minor / 10 ** digits).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

/** What a license was bought at, as the store reported it: "USD 49.00 once", "EUR 15.00 / month", or "not recorded". */
export function licenseAmount(amount: UserConsole['licenses'][number]['amount']): string {
  if (!amount) return 'not recorded';
  return `${h(money(amount.minor, amount.currency))} ${amount.interval === null ? 'once' : `/ ${h(amount.interval)}`}${amount.refunded ? ' (refunded)' : ''}`;
}

export function renderMoney(ctx: PageContext, sources: MoneySource[], amounts: MoneyAmount[] = []): string {
  const byCurrency = amounts.map((a) => [
    h(a.source), a.currency === null ? 'not recorded' : h(a.currency), a.payingUsers, a.seats,
    a.currency === null ? '–' : h(money(a.mrrMinor, a.currency)),
    a.currency === null || a.mrrPerSeatMinor === null ? '–' : h(money(a.mrrPerSeatMinor, a.currency)),
    a.sales30d, a.currency === null ? '–' : h(money(a.sales30dMinor, a.currency)),
  ]);
  const rows = sources.map((s) => [h(s.source), s.payingUsers, s.seats, s.mrrCents === null ? 'not recorded' : dollars(s.mrrCents), s.mrrCents === null || s.seats === 0 ? '–' : dollars(Math.round(s.mrrCents / s.seats))]);
  const body = `<section class="card wide" id="money" aria-labelledby="money-title"><h2 id="money-title">Paying users by source${csvLink(ctx, '/export/money.csv')}</h2>
<p class="def">Now. Stripe: subscriptions active or past due, MRR at the plan prices × seats. Figma: users whose payment status is PAID. Lemon Squeezy and Gumroad: users with an active license, seats = license quantity. The MRR here is at this package's plan prices (Stripe only); the table below is at the prices each source reported.</p>
${table('table-money', 'Paying users, seats and MRR per source', ['Source', 'Paying users', 'Seats', 'MRR', 'MRR per seat'], rows)}</section>
<section class="card wide" id="money-currency" aria-labelledby="money-currency-title"><h2 id="money-currency-title">Revenue at the prices each source reported${csvLink(ctx, '/export/money-by-currency.csv')}</h2>
<p class="def">Per source and currency; currencies are never added together. Stripe: the price's unit amount × seats on active and past-due subscriptions. Lemon Squeezy: its webhooks' order total, or a subscription's latest paid invoice over the interval set on the variant's plan link. Gumroad: the price its verify answer reported for each active license. Figma reports no price: Figma rows use the price set on the PAID link (plans.linkFigma … { price }). MRR brings recurring prices to a month (a year ÷ 12); one-time prices are counted as sales in the last 30 days. "not recorded": paying users whose price was never reported.</p>
${table('table-money-currency', 'Revenue per source and currency', ['Source', 'Currency', 'Paying users', 'Seats', 'MRR', 'MRR per seat', 'Sales, 30 days', 'Sales amount, 30 days'], byCurrency)}</section>`;
  return layout(ctx, 'money', body);
}

