// The plan commands: plans (the list) and plans link (to Stripe ids, a Figma payment status, or a
// store's license keys).
import { formatPlans } from '../format.ts';
import { BIN, UsageError, type Command, type Context } from '../context.ts';

export const plansCommand: Command = {
  name: 'plans',
  summary: 'list the plans with their limits and Stripe ids',
  options: ['json'],
  connects: true,
  examples: [`${BIN} plans`, `${BIN} plans --json`],
  run: listPlans,
};

export const plansLinkCommand: Command = {
  name: 'plans link',
  args: ['<slug>'],
  summary: 'link a plan to its Stripe product and/or price (what the webhook sync matches), or to a Figma payment status',
  options: ['product', 'price', 'figma', 'trial-days', 'license', 'variant', 'devices', 'seats', 'interval', 'interval-count', 'json'],
  connects: true,
  examples: [
    `${BIN} plans link pro --product prod_Pro123 --price price_Pro123`,
    `${BIN} plans link basic --price price_NewBasic`,
    `${BIN} plans link pro --figma PAID`,
    `${BIN} plans link pro --figma FIRST_USE --trial-days 7`,
    `${BIN} plans link pro --license lemonsqueezy --product 12345 --devices 3`,
    `${BIN} plans link team --license gumroad --product plug-pro_Wsw== --seats 10`,
    `${BIN} plans link pro --license lemonsqueezy --product 12345 --variant 678 --interval year`,
    `${BIN} plans link pro --devices 2`,
  ],
  run: plansLink,
};

async function listPlans(ctx: Context): Promise<number> {
  const connection = await ctx.connect();
  ctx.print((await connection.readCatalog()).plans, formatPlans);
  return 0;
}

async function plansLink(ctx: Context): Promise<number> {
  const { product, price, figma, 'trial-days': trialDays } = ctx.values;
  if (figma !== undefined) return plansLinkFigma(ctx, figma, trialDays);
  if (ctx.values.license !== undefined) return plansLinkLicense(ctx, ctx.values.license);
  if (ctx.values.devices !== undefined && product === undefined && price === undefined) return plansDeviceLimit(ctx, ctx.values.devices);
  for (const o of ['variant', 'devices', 'seats', 'interval', 'interval-count'] as const) {
    if (ctx.values[o] !== undefined) throw new UsageError(`plans link: --${o} goes with --license lemonsqueezy|gumroad`);
  }
  if (trialDays !== undefined) throw new UsageError('plans link: --trial-days goes with --figma FIRST_USE');
  if (product === undefined && price === undefined) throw new UsageError('plans link needs --product, --price, or both (or --figma PAID|TRIAL|FIRST_USE, or --license lemonsqueezy|gumroad --product ID)');
  const slug = ctx.args[0]!;
  const plans = (await ctx.connect()).plans();
  // plans.linkStripe sets both ids (null unlinks): an option left out keeps the plan's current id.
  // An unknown slug finds no current plan, and linkStripe names it (unknown_plan).
  const current = (await plans.list({ includeInactive: true })).find((p) => p.slug === slug);
  const plan = await plans.linkStripe(slug, {
    productId: product ?? current?.stripeProductId ?? null,
    priceId: price ?? current?.stripePriceId ?? null,
  });
  ctx.print(plan, (p) => `Linked plan ${p.slug} to Stripe product ${p.stripeProductId ?? '-'}, price ${p.stripePriceId ?? '-'}.\n\n${formatPlans([p])}`);
  return 0;
}

/** `plans link <slug> --devices N|none`: the plan's own cap on devices per license. */
async function plansDeviceLimit(ctx: Context, devices: string): Promise<number> {
  for (const o of ['variant', 'seats', 'trial-days', 'interval', 'interval-count'] as const) {
    if (ctx.values[o] !== undefined) throw new UsageError(`plans link: --${o} goes with --license lemonsqueezy|gumroad; --devices alone sets the plan's cap`);
  }
  if (devices !== 'none' && !/^\d{1,6}$/.test(devices)) throw new UsageError('plans link: --devices must be a whole number (or none)');
  const plan = await (await ctx.connect()).plans().setDeviceLimit(ctx.args[0]!, devices === 'none' ? null : Number(devices));
  ctx.print(plan, (p) =>
    `Plan ${p.slug}: ${p.deviceLimit === null ? 'no device cap of its own' : `at most ${p.deviceLimit} devices per license`}.\n\n${formatPlans([p])}`);
  return 0;
}

async function plansLinkLicense(ctx: Context, license: string): Promise<number> {
  const { product, price, variant, devices, seats } = ctx.values;
  if (license !== 'lemonsqueezy' && license !== 'gumroad') throw new UsageError('plans link: --license is lemonsqueezy or gumroad');
  if (price !== undefined || ctx.values['trial-days'] !== undefined) throw new UsageError('plans link: --license takes --product [--variant] [--devices] [--seats] [--interval [--interval-count]] only');
  if (product === undefined) throw new UsageError('plans link --license needs --product ID');
  const count = (v: string | undefined, name: string) => {
    if (v === undefined) return undefined;
    if (!/^\d{1,6}$/.test(v)) throw new UsageError(`plans link: --${name} must be a whole number`);
    return Number(v);
  };
  const interval = ctx.values.interval;
  if (interval !== undefined && !['day', 'week', 'month', 'year'].includes(interval)) throw new UsageError('plans link: --interval is day, week, month or year');
  if (ctx.values['interval-count'] !== undefined && interval === undefined) throw new UsageError('plans link: --interval-count goes with --interval');
  const link = {
    provider: license, productId: product, variantId: variant ?? null, deviceLimit: count(devices, 'devices'), seats: count(seats, 'seats'),
    interval: (interval ?? null) as 'day' | 'week' | 'month' | 'year' | null, intervalCount: count(ctx.values['interval-count'], 'interval-count') ?? null,
  } as const;
  const plan = await (await ctx.connect()).plans().linkLicense(ctx.args[0]!, link);
  ctx.print({ plan, license: link }, (r) =>
    `Linked plan ${r.plan!.slug} to ${license} product ${product}${variant ? ` variant ${variant}` : ''}` +
    `${link.deviceLimit ? `, at most ${link.deviceLimit} devices per license` : ''}${link.seats ? `, ${link.seats} seats per license` : ''}` +
    `${link.interval ? `, renewing every ${link.intervalCount && link.intervalCount > 1 ? `${link.intervalCount} ${link.interval}s` : link.interval}` : ''}.\n\n${formatPlans([r.plan!])}`);
  return 0;
}

async function plansLinkFigma(ctx: Context, figma: string, trialDays: string | undefined): Promise<number> {
  if (ctx.values.product !== undefined || ctx.values.price !== undefined) {
    throw new UsageError('plans link: --figma links a Figma status; link Stripe ids in a separate call');
  }
  const status = figma.toUpperCase();
  if (status !== 'PAID' && status !== 'TRIAL' && status !== 'FIRST_USE') throw new UsageError('plans link: --figma is PAID, TRIAL or FIRST_USE');
  if ((status === 'FIRST_USE') !== (trialDays !== undefined)) throw new UsageError('plans link: --figma FIRST_USE needs --trial-days N (and only it)');
  if (trialDays !== undefined && !/^\d{1,4}$/.test(trialDays)) throw new UsageError('plans link: --trial-days must be a whole number');
  const slug = ctx.args[0]!;
  const plan = await (await ctx.connect()).plans().linkFigma(slug, status, { trialDays: trialDays === undefined ? undefined : Number(trialDays) });
  ctx.print({ plan, figma: status, trialDays: trialDays === undefined ? null : Number(trialDays) }, (r) =>
    `Linked plan ${r.plan!.slug} to Figma ${r.figma}${r.trialDays ? ` (${r.trialDays} days from a Figma user's first sign-in)` : ''}.\n\n${formatPlans([r.plan!])}`);
  return 0;
}
