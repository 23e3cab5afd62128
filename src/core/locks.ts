// Advisory locks: one scheme. Every lock the library takes, in SQL or from TypeScript, is
// transaction-scoped and two-keyed, pg_advisory_xact_lock(namespace, pg_catalog.hashtext(key)):
// released at COMMIT or ROLLBACK (safe on pooled connections), and one namespace per thing
// serialized, so unrelated locks never collide. The namespaces are listed here once;
// test/core.locks.test.ts checks every installed function and every TypeScript caller against them.
import type { Queryable } from './queryable.ts';

export const LOCKS = {
  /** consume/refund of one idempotency key: key `user:idempotency_key` (sql/006, 017). */
  usageIdempotency: 7301,
  /** one user's counter for one action, on the slow path: key `user:action` (sql/006, 017). */
  usageCounter: 7302,
  /** the usage rollup, taken with try-lock: one at a time, the others skip (sql/011). Key 0. */
  usageRollup: 7303,
  /** issuing a token under a live-token cap: key the user id (sql/023). */
  tokensPerUser: 7304,
  /** one user's subscription writes (Stripe sync, manual assignment): key the user id (sql/023). */
  subscriptionsPerUser: 7305,
  // 7310 was the Figma payment-token check's single flight; it held a connection across the call
  // to Figma and is retired (billing/figma.ts coalesces in memory, holding nothing). Not reused.
  /** linking or creating the user of one Figma user id: key the Figma id (sql/015). */
  figmaUser: 7311,
  /** one license key's activations, checks and webhooks: key `provider:digest` (sql/016, billing/licenses.ts). */
  licenseKey: 7320,
  /** one owner's team: invitations, claims and ownership transfers: key the owner id (sql/028, sql/functions/teams.sql). */
  teamOwner: 7330,
  /** the terms every effective plan row follows (plans, plan links, license products): taken shared by each row's writer, exclusively by a change of terms (sql/026, sql/functions/effective_plan.sql). Key 0. */
  effectivePlanTerms: 7331,
} as const;

export type LockName = keyof typeof LOCKS;

/**
 * Setup's lock, the one exception: a one-key lock on hashtext of this text, taken before any of our
 * objects exist. It must stay the same for every version of the package (two versions' setups
 * running at once must queue on the same lock), so it keeps the form it has always had.
 */
export const SETUP_LOCK_KEY = 'figma-plugin-auth-db:setup';

/** Takes the transaction-scoped lock `name` on `key`; `tx` must be inside a transaction. */
export async function lock(tx: Pick<Queryable, 'query'>, name: LockName, key: string): Promise<void> {
  await tx.query('SELECT pg_catalog.pg_advisory_xact_lock($1::integer, pg_catalog.hashtext($2::text))', [LOCKS[name], key]);
}
