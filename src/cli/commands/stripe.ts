// The Stripe command: stripe reconcile, which re-reads every subscription from Stripe's API and
// repairs what missed or reordered webhooks left behind (subscriptions.reconcileStripe), or with
// --dry-run only reports it. The secret key comes from STRIPE_SECRET_KEY, never from an argument
// (arguments end up in shell histories and process lists).
import { loadDevelopmentEnv } from '../../core/env.ts';
import { findUser } from '../../core/users.ts';
import type { ReconcileReport } from '../../billing/stripe-billing.ts';
import { BIN, UsageError, type Command, type Context } from '../context.ts';

export const stripeReconcileCommand: Command = {
  name: 'stripe reconcile',
  summary: 're-read subscriptions from Stripe (every status, every page) and repair what missed or late webhooks left behind; STRIPE_SECRET_KEY',
  options: ['user', 'customer', 'dry-run', 'json'],
  connects: true,
  examples: [
    `${BIN} stripe reconcile --dry-run`,
    `${BIN} stripe reconcile`,
    `${BIN} stripe reconcile --user ada@example.com`,
    `${BIN} stripe reconcile --customer cus_Q1abc --json`,
  ],
  run: reconcile,
};

async function reconcile(ctx: Context): Promise<number> {
  const env = ctx.values.production ? ctx.io.env : loadDevelopmentEnv(ctx.io.cwd, ctx.io.env);
  const secretKey = env.STRIPE_SECRET_KEY;
  if (!secretKey) throw new UsageError('stripe reconcile needs STRIPE_SECRET_KEY in the environment (a secret key sk_… or a restricted key rk_… with read access to subscriptions)');
  const apiBaseUrl = env.STRIPE_API_BASE_URL || undefined;
  const connection = await ctx.connect();
  if (connection.kind === 'supabase') throw new UsageError('stripe reconcile needs SQL access: use a postgres:// DATABASE_URL (Supabase\'s connection string), not the REST API');
  const db = connection.database();
  const user = ctx.values.user === undefined ? undefined : await findUser(db, ctx.values.user);
  const { createPluginAuth } = await import('../../auth.ts');
  const auth = createPluginAuth(db, { stripe: { secretKey, ...(apiBaseUrl ? { apiBaseUrl } : {}) } });
  const report = await auth.subscriptions.reconcileStripe({
    ...(user ? { userId: user.id } : {}),
    ...(ctx.values.customer !== undefined ? { customerId: ctx.values.customer } : {}),
    dryRun: ctx.values['dry-run'] === true,
  });
  ctx.print(report, formatReconcile);
  return 0;
}

const show = (v: string | number | boolean | null) => (v === null ? '-' : String(v));

export function formatReconcile(r: ReconcileReport): string {
  const verb = r.dryRun ? 'would repair' : 'repaired';
  const lines = [
    `${r.dryRun ? 'Dry run: nothing written. ' : ''}Read ${r.checked} Stripe subscription${r.checked === 1 ? '' : 's'} in ${r.pages} page${r.pages === 1 ? '' : 's'}: ` +
      `${r.unchanged} in sync, ${r.differences.length} different, ${r.applied} ${verb}.`,
  ];
  for (const d of r.differences) {
    lines.push('', `${d.subscriptionId}  ${d.kind}  ${d.outcome}${r.dryRun && d.outcome === 'applied' ? ' (would apply)' : ''}  customer ${show(d.customerId)}  user ${show(d.userId)}`);
    for (const f of d.fields) lines.push(`  ${f.field}: ${show(f.database)} -> ${show(f.stripe)}`);
  }
  const outcomes = new Set(r.differences.map((d) => d.outcome));
  if (outcomes.has('stale')) lines.push('', 'stale: the row changed after Stripe was read (a webhook was faster); run again to compare with the newer state.');
  if (outcomes.has('unknown_customer')) lines.push('', 'unknown_customer: no user is linked to the customer and metadata.user_id is not set; link it, then run again.');
  if (outcomes.has('unknown_price')) lines.push('', 'unknown_price: link the price to a plan (`plans link <slug> --price price_…`), then run again.');
  if (outcomes.has('reported')) lines.push('', 'not_in_stripe: Stripe has no such subscription (404); the row is left as it is.');
  return lines.join('\n');
}
