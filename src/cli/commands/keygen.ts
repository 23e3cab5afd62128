// keygen: a new entitlement signing key (ENTITLEMENT_SIGNING_KEY), made on this machine. The
// private JWK goes to stdout, one line, ready for an environment variable or a secret store; the
// public JWKS (what the plugin verifies snapshots with) goes to stderr, so `> file` keeps only the key.
import { BIN, UsageError, type Command, type Context } from '../context.ts';

export const keygenCommand: Command = {
  name: 'keygen',
  summary: 'print a new private JWK for ENTITLEMENT_SIGNING_KEY (stdout) and its public JWKS (stderr)',
  options: ['alg'],
  examples: [`${BIN} keygen`, `${BIN} keygen --alg EdDSA > entitlement-key.jwk`],
  run: keygen,
};

async function keygen(ctx: Context): Promise<number> {
  const alg = ctx.values.alg ?? 'ES256';
  if (alg !== 'ES256' && alg !== 'EdDSA') throw new UsageError(`keygen: --alg must be ES256 or EdDSA`, keygenCommand);
  const { generateEntitlementKey } = await import('../../entitlements/keys.ts');
  const jwk = await generateEntitlementKey(alg);
  const { d: _private, ...publicJwk } = jwk;
  ctx.out(JSON.stringify(jwk));
  ctx.io.stderr(`# public JWKS (what the plugin verifies with): ${JSON.stringify({ keys: [publicJwk] })}\n`);
  return 0;
}
