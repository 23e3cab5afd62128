// The token commands: tokens list <user>, tokens revoke <token-id>, tokens revoke-all <user>.
import type { Database } from '../../core/database.ts';
import { findUser } from '../../core/users.ts';
import { formatTokens } from '../format.ts';
import { BIN, type Command, type Context } from '../context.ts';

export const tokensListCommand: Command = {
  name: 'tokens list',
  args: ['<user>'],
  summary: "a user's plugin tokens (by id or email): device, status, dates; never the token or its digest",
  options: ['json'],
  connects: true,
  examples: [`${BIN} tokens list ada@example.com`, `${BIN} tokens list ada@example.com --json | jq '.tokens[] | select(.status == "active")'`],
  run: list,
};

export const tokensRevokeCommand: Command = {
  name: 'tokens revoke',
  args: ['<token-id>'],
  summary: 'revoke one plugin token by its id (from `tokens list`); the plugin must sign in again',
  options: ['reason', 'json'],
  connects: true,
  examples: [`${BIN} tokens revoke 6f1c…-uuid --reason "lost laptop"`],
  run: revoke,
};

export const tokensRevokeAllCommand: Command = {
  name: 'tokens revoke-all',
  args: ['<user>'],
  summary: "revoke every active token of a user (by id or email): signed out everywhere",
  options: ['reason', 'json'],
  connects: true,
  examples: [`${BIN} tokens revoke-all ada@example.com`, `${BIN} tokens revoke-all ada@example.com --reason compromised --json`],
  run: revokeAll,
};

async function list(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const user = await findUser(db, ctx.args[0]!);
  ctx.print({ user, tokens: await (await pluginAuth(db)).tokens.list(user.id) }, formatTokens);
  return 0;
}

async function revoke(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const tokenId = ctx.args[0]!;
  const revoked = await (await pluginAuth(db)).tokens.revoke(tokenId, ctx.values.reason ?? 'revoked_by_operator');
  ctx.print({ tokenId, revoked }, (r) => (r.revoked ? `Revoked token ${r.tokenId}.` : `Token ${r.tokenId} was already revoked: nothing changed.`));
  return 0;
}

async function revokeAll(ctx: Context): Promise<number> {
  const db = (await ctx.connect()).database();
  const user = await findUser(db, ctx.args[0]!);
  const revoked = await (await pluginAuth(db)).tokens.revokeAll(user.id, ctx.values.reason ?? 'revoked_by_operator');
  ctx.print({ user, revoked }, (r) => `Revoked ${r.revoked} active token${r.revoked === 1 ? '' : 's'} of ${r.user.email} (${r.user.id}).`);
  return 0;
}

/** The library's API, loaded when a command runs (cli.ts: no command loads another's modules). */
const pluginAuth = async (db: Database) => (await import('../../auth.ts')).createPluginAuth(db);
