// Where a plan can come from. The rule itself is SQL (public.plugin_auth_grants, sql/015): every
// grant in force, one branch per source, best first. This file only names the sources for
// TypeScript and reads that function's rows.
import type { Queryable } from '../core/queryable.ts';

/**
 * A source of a plan. 'free' means no grant is in force. 'lemonsqueezy' and 'gumroad' are license
 * keys, 'seat' a seat of a team license (sql/016, docs/licenses.md).
 */
export type PlanSource = 'stripe' | 'figma' | 'lemonsqueezy' | 'gumroad' | 'seat' | 'manual' | 'free';

/**
 * When two sources grant equally good plans (same price and limits, e.g. the same plan), the one
 * listed first is reported. The numbers are the `precedence` of each branch in plugin_auth_grants.
 */
export const SOURCE_PRECEDENCE: Readonly<Record<Exclude<PlanSource, 'free'>, number>> = {
  stripe: 10,
  figma: 20,
  lemonsqueezy: 30,
  gumroad: 40,
  seat: 50,
  manual: 60,
};

/** One grant in force: which source gives which plan, until when (null: no end). */
export interface PlanGrant {
  source: Exclude<PlanSource, 'free'>;
  planSlug: string;
  /**
   * When the grant ends unless renewed: Stripe's current_period_end, a manual plan's until, a
   * Figma answer's grant_until (checked_at + graceSeconds) or the end of a first-use trial.
   */
  until: Date | null;
  /**
   * The source's own word: the Stripe status, 'manual', the Figma link (PAID, TRIAL, FIRST_USE),
   * a license's status (active, inactive), or for a seat the store of its team license.
   */
  detail: string;
}

interface GrantRow {
  source: PlanGrant['source'];
  plan_slug: string;
  until: Date | null;
  detail: string;
}

export const toGrant = (row: GrantRow): PlanGrant => ({ source: row.source, planSlug: row.plan_slug, until: row.until, detail: row.detail });

/** Every grant of the user in force at `at` (default now), best first. The first one is the effective plan. */
export async function listGrants(db: Pick<Queryable, 'query'>, userId: string, at: Date | null = null): Promise<PlanGrant[]> {
  const rows = await db.query<GrantRow>(
    'SELECT source, plan_slug, until, detail FROM public.plugin_auth_grants($1::uuid, COALESCE($2::timestamptz, now())) ORDER BY rank',
    [userId, at],
  );
  return rows.map(toGrant);
}
