import { existsSync } from 'node:fs';
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { readCatalog, type Catalog, type CatalogPlan } from './catalog.ts';
import { openDatabase, type Database } from './db.ts';
import { NotFoundError, SetupError, ValidationError } from './errors.ts';
import { linkPlanToStripe, planFromRow, validateLink, type PlanRow, type StripeLink } from './plans-admin.ts';
import { describeTarget, resolveTarget, type SetupMode, type SetupTarget } from './setup.ts';
import { quoteIdent, sqlStatusSource, type StatusSource } from './status.ts';
import type { Env } from './env.ts';

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
    return { kind: 'pglite', dataDir: databaseUrl.slice('pglite:'.length) || './.data/pglite' };
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
  linkPlan(slug: string, link: StripeLink): Promise<CatalogPlan>;
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
    throw new SetupError('connection_failed', `cannot connect to ${describeTarget(target)}: ${(error as Error).message}`, { cause: error });
  }
  const read = () => readCatalogOrExplain(db);
  return {
    kind: target.kind,
    description: describeTarget(target),
    ...sqlStatusSource(db, read),
    database: () => db,
    linkPlan: (slug, link) => linkPlanToStripe(db, slug, link),
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

function supabaseConnection(target: Extract<SetupTarget, { kind: 'supabase' }>): Connection {
  const client: SupabaseClient = createClient(target.url, target.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  });
  const fail = (what: string, error: { message: string; code?: string }) =>
    error.code === 'PGRST202' ? notSetUp() : new SetupError('supabase_failed', `${what}: ${error.message}`);
  return {
    kind: 'supabase',
    description: describeTarget(target),
    async readCatalog() {
      const { data, error } = await client.rpc('plugin_auth_catalog');
      if (error) throw fail('reading the catalog', error);
      return (typeof data === 'string' ? JSON.parse(data) : data) as Catalog;
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
    async linkPlan(slug, link) {
      validateLink(slug, link);
      const changes: Record<string, string> = { updated_at: new Date().toISOString() };
      if (link.productId !== undefined) changes.stripe_product_id = link.productId;
      if (link.priceId !== undefined) changes.stripe_price_id = link.priceId;
      const { data, error } = await client.from('subscription_plans').update(changes).eq('plan_slug', slug)
        .select('plan_slug, name, price_monthly, limits, features, is_active, stripe_product_id, stripe_price_id');
      if (error?.code === '23505') throw new ValidationError('stripe_price_in_use', `Stripe price ${link.priceId} is already linked to another plan: unlink it there first`);
      if (error) throw fail('linking the plan', error);
      const row = (data as PlanRow[] | null)?.[0];
      if (!row) throw new NotFoundError('unknown_plan', `no plan with slug "${slug}": see \`figma-plugin-auth-db plans\``);
      return planFromRow(row);
    },
    async close() {},
  };
}
