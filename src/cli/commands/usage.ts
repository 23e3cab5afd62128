// The usage commands: usage <user> (what one user used, was denied, and may still do today) and
// retention (deleting old plugin_usage rows in batches).
import { findUser } from '../../core/users.ts';
import { formatUsage, type UserUsage } from '../format.ts';
import { BIN, UsageError, type Command, type Context } from '../context.ts';

export const usageCommand: Command = {
  name: 'usage',
  args: ['<user>'],
  summary: "a user's usage (by id or email): plan, today per action, lifetime, last denials, last 30 days",
  options: ['denials', 'json'],
  connects: true,
  examples: [`${BIN} usage ada@example.com`, `${BIN} usage 0b6c…-uuid --json | jq .today`, `${BIN} usage ada@example.com --denials 50`],
  run: usage,
};

export const retentionCommand: Command = {
  name: 'retention',
  summary: 'delete plugin_usage rows older than an age, in small batches (counters are kept)',
  options: ['older-than', 'batch-size', 'dry-run', 'json'],
  connects: true,
  examples: [`${BIN} retention --older-than 90d --dry-run`, `${BIN} retention --older-than 90d --batch-size 5000`],
  run: retention,
};

async function usage(ctx: Context): Promise<number> {
  const denials = ctx.values.denials === undefined ? 10 : Number(ctx.values.denials);
  if (!Number.isInteger(denials) || denials < 1 || denials > 1000) throw new UsageError('usage: --denials is a whole number from 1 to 1000');
  const db = (await ctx.connect()).database();
  const [{ createPluginAuth }, { createUsageReport }] = await Promise.all([import('../../auth.ts'), import('../../usage/report.ts')]);
  const auth = createPluginAuth(db);
  const report = createUsageReport(db);
  const user = await findUser(db, ctx.args[0]!);
  const effective = await auth.subscriptions.effectivePlan(user.id);
  const last30Days = await auth.usage.summary(user.id);
  // Today's answer for resize (the limited action) and for every other action used today.
  const today = new Date().toISOString().slice(0, 10);
  const actions = [...new Set(['resize', ...last30Days.filter((d) => d.date === today).map((d) => d.action)])];
  const answers: UserUsage['today'] = [];
  for (const action of actions) {
    // check answers as consume would, i.e. counting the call it previews when allowed: the
    // operator wants the count now, so take that call back out.
    const a = await auth.usage.check(user.id, action);
    const counted = a.allowed ? 1 : 0;
    answers.push({
      action,
      used: a.used - counted,
      usageLimit: a.usageLimit,
      remaining: a.remaining === null ? null : a.remaining + counted,
      resetsAt: a.resetsAt,
      nextAllowed: a.allowed,
      reason: a.reason,
    });
  }
  const result: UserUsage = {
    user,
    plan: { slug: effective.planSlug, source: effective.source, status: effective.status, limits: effective.limits },
    today: answers,
    lifetime: await report.lifetime(user.id),
    recentDenials: await report.recentDenials(user.id, { limit: denials }),
    last30Days,
  };
  ctx.print(result, formatUsage);
  return 0;
}

async function retention(ctx: Context): Promise<number> {
  const { 'older-than': olderThan, 'batch-size': batch } = ctx.values;
  if (olderThan === undefined) throw new UsageError('retention needs --older-than, e.g. --older-than 90d');
  if (batch !== undefined && !/^\d{1,6}$/.test(batch)) throw new UsageError('retention: --batch-size must be a whole number');
  const db = (await ctx.connect()).database();
  const { purgeUsage } = await import('../../usage/retention.ts');
  const result = await purgeUsage(db, { olderThan, batchSize: batch === undefined ? undefined : Number(batch), dryRun: ctx.values['dry-run'] });
  ctx.print(result, (r) =>
    r.dryRun
      ? `Would delete ${r.deleted} plugin_usage rows created before ${r.cutoff.toISOString()} (dry run: nothing deleted).`
      : `Deleted ${r.deleted} plugin_usage rows created before ${r.cutoff.toISOString()} in ${r.batches} batches. daily_usage_summary (the counters) is untouched.`,
  );
  return 0;
}
