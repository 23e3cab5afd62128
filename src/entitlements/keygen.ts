// npm run entitlements:keygen [-- --alg EdDSA]: prints a new private JWK for ENTITLEMENT_SIGNING_KEY
// on stdout (one line, ready for an environment variable), and its public JWKS on stderr.
import { parseArgs } from 'node:util';
import { generateEntitlementKey } from './keys.ts';

const { values } = parseArgs({ options: { alg: { type: 'string', default: 'ES256' } } });
if (values.alg !== 'ES256' && values.alg !== 'EdDSA') {
  console.error('usage: npm run entitlements:keygen [-- --alg ES256|EdDSA]');
  process.exit(2);
}
const jwk = generateEntitlementKey(values.alg);
const { d: _private, ...publicJwk } = jwk;
console.log(JSON.stringify(jwk));
console.error(`# public JWKS (what the plugin verifies with): ${JSON.stringify({ keys: [publicJwk] })}`);
