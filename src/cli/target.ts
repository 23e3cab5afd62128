import { existsSync } from 'node:fs';
import { parseCatalog, readCatalog, type Catalog } from '../schema/catalog.ts';
import { openDatabase, type Database } from '../core/db.ts';
import { fromDatabaseError, SetupError, ValidationError } from '../core/errors.ts';
import { createPlans, toPlan, type PlanRow, type Plans } from '../billing/plans.ts';
import { describeTarget, resolveTarget, type SetupMode, type SetupTarget } from '../schema/setup.ts';
import { quoteIdent, sqlStatusSource, type StatusSource } from '../schema/status.ts';
import { createSupabaseClient } from '../schema/supabase.ts';
import { pgliteDataDir, type Env } from '../core/env.ts';

/**
 * The CLI's target: `--database-url` (postgres://… or pglite:<dir>) when given, else the same
 * resolution as setup (DATABASE_URL; SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY; embedded PGlite).
 */
export function resolveCliTarget(databaseUrl: string | undefined, env: Env, mode: SetupMode): SetupTarget {
  if (databaseUrl === undefined) return resolveTarget(env, mode);
  if (databaseUrl.startsWith('pglite:')) {
    if (mode === 'production') {
      throw new SetupError('no_database_configured', 'production never uses the embedded database: give a postgres:// URL');
    }
    return { kind: 'pglite', dataDir: databaseUrl.slice('pglite:'.length) || pgliteDataDir(env) };
  }
  return resolveTarget({ DATABASE_URL: databaseUrl }, mode);
}

/** The environment setup must see so that it picks exactly this target. */
export function envForTarget(target: SetupTarget): Env {
  if (target.kind === 'postgres') return { DATABASE_URL: target.url };
  if (target.kind === 'supabase') return { SUPABASE_URL: target.url, SUPABASE_SERVICE_ROLE_KEY: target.serviceRoleKey };
  return { PGLITE_DATA_DIR: target.dataDir };
}

/** An open target: what every read-only and operator command works through. */
export interface Connection extends StatusSource {
  kind: SetupTarget['kind'];
  /** Safe to print: no password, no key. */
  description: string;
  /** SQL access; commands that need more than the REST API offers ask for it. */
  database(): Database;
  /** The library's plans API: over SQL, or over the REST API (the same SQL function, by rpc). */
  plans(): Pick<Plans, 'list' | 'linkStripe' | 'linkFigma' | 'linkLicense' | 'setDeviceLimit'>;
  close(): Promise<void>;
}

export async function connect(target: SetupTarget): Promise<Connection> {
  if (target.kind === 'supabase') return supabaseConnection(target);
  // Reading an embedded database that was never created would create an empty one: say so instead.
  if (target.kind === 'pglite' && !existsSync(target.dataDir)) {
    throw new SetupError('not_set_up', `no embedded database in ${target.dataDir}: run \`figma-plugin-auth-db setup\` first`);
  }
  let db: Database;
  try {
    db = await openDatabase(target.kind === 'postgres' ? target.url : `pglite:${target.dataDir}`, { max: 1 });
    await db.query('SELECT 1');
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError('connection_failed', `cannot connect to ${describeTarget(target)}: ${(error as Error).message}`, { cause: error });
  }
  const read = () => readCatalogOrExplain(db);
  return {
    kind: target.kind,
    description: describeTarget(target),
    ...sqlStatusSource(db, read),
    database: () => db,
    plans: () => createPlans(db),
    close: () => db.close(),
  };
}

/** A database setup never ran on has no plugin_auth_catalog(): name the fix, not SQLSTATE 42883. */
async function readCatalogOrExplain(db: Pick<Database, 'query'>): Promise<Catalog> {
  try {
    return await readCatalog(db);
  } catch (error) {
    if ((error as { code?: string }).code === '42883') throw notSetUp();
    throw error;
  }
}

const notSetUp = () =>
  new SetupError('not_set_up', 'this database has no figma-plugin-auth-db schema (public.plugin_auth_catalog() is missing): run `figma-plugin-auth-db setup`');

async function supabaseConnection(target: Extract<SetupTarget, { kind: 'supabase' }>): Promise<Connection> {
  const client = await createSupabaseClient(target.url, target.serviceRoleKey);
  const fail = (what: string, error: { message: string; code?: string }) =>
    error.code === 'PGRST202' ? notSetUp() : new SetupError('supabase_failed', `${what}: ${error.message}`);
  return {
    kind: 'supabase',
    description: describeTarget(target),
    async readCatalog() {
      const { data, error } = await client.rpc('plugin_auth_catalog');
      if (error) throw fail('reading the catalog', error);
      return parseCatalog(data);
    },
    async countRows(table) {
      const { count, error } = await client.from(table).select('*', { count: 'exact', head: true });
      if (error) throw fail(`counting ${quoteIdent(table)}`, error);
      return count ?? 0;
    },
    async latest(table, column) {
      const { data, error } = await client.from(table).select(column).not(column, 'is', null)
        .order(column, { ascending: false }).limit(1);
      if (error) throw fail(`reading ${table}.${column}`, error);
      const value = (data?.[0] as Record<string, string> | undefined)?.[column];
      return value ? new Date(value).toISOString() : null;
    },
    database() {
      throw new ValidationError('needs_database_url', 'this command needs a direct connection: set DATABASE_URL (Supabase: Project Settings → Database → connection string)');
    },
    plans: () => ({
      async list(options = {}) {
        let query = client.from('subscription_plans').select('*');
        if (!options.includeInactive) query = query.or('is_active.is.null,is_active.eq.true');
        const { data, error } = await query.order('price_monthly', { ascending: true, nullsFirst: true }).order('plan_slug');
        if (error) throw fail('reading the plans', error);
        return (data as PlanRow[]).map(toPlan);
      },
      // link_stripe_plan (sql/008) by rpc: PostgREST reports its SQLSTATE as `code`, so the
      // library's error mapping applies unchanged.
      async linkStripe(planSlug, link) {
        const { data, error } = await client.rpc('link_stripe_plan', { p_plan_slug: planSlug, p_product_id: link.productId, p_price_id: link.priceId });
        if (error?.code === '23505') throw new ValidationError('price_already_linked', 'price_already_linked: this Stripe price belongs to another plan');
        if (error) throw error.code?.startsWith('PA') ? fromDatabaseError(error) : fail('linking the plan', error);
        return toPlan((data as PlanRow[])[0]!);
      },
      // link_figma_plan (sql/015) by rpc, after the same argument checks as over SQL.
      async linkFigma(planSlug, status, options = {}) {
        const { data, error } = await client.rpc('link_figma_plan', { p_plan_slug: planSlug, p_link: status, p_trial_days: options.trialDays ?? null });
        if (error) throw error.code?.startsWith('PA') ? fromDatabaseError(error) : fail('linking the plan', error);
        const rows = data as PlanRow[];
        return rows[0] ? toPlan(rows[0]) : null;
      },
      // link_license_plan (sql/016) by rpc.
      async linkLicense(planSlug, link) {
        const { data, error } = await client.rpc('link_license_plan', {
          p_plan_slug: planSlug, p_provider: link.provider, p_product_id: link.productId, p_variant_id: link.variantId ?? null,
          p_device_limit: link.deviceLimit ?? null, p_seats: link.seats ?? null,
          p_interval: link.interval ?? null, p_interval_count: link.interval ? link.intervalCount ?? 1 : null,
        });
        if (error) throw error.code?.startsWith('PA') ? fromDatabaseError(error) : fail('linking the plan', error);
        const rows = data as PlanRow[];
        return rows[0] ? toPlan(rows[0]) : null;
      },
      // set_plan_device_limit (sql/018) by rpc.
      async setDeviceLimit(planSlug, deviceLimit) {
        const { data, error } = await client.rpc('set_plan_device_limit', { p_plan_slug: planSlug, p_device_limit: deviceLimit });
        if (error) throw error.code?.startsWith('PA') ? fromDatabaseError(error) : fail('setting the device limit', error);
        return toPlan((data as PlanRow[])[0]!);
      },
    }),
    async close() {},
  };
}
