import { generateEntitlementKey } from '../src/entitlements/keys.ts';
import { createPluginAuth } from '../src/auth.ts';
const a = await generateEntitlementKey(); const b = await generateEntitlementKey();
console.log(a);
for (const k of [{ ...a, x: b.x }, { ...a, x: b.x, y: b.y }, { ...a, d: b.d }, { ...a, x: 'A'.repeat(43) }]) {
  const auth = createPluginAuth({} as never, { entitlementSigningKey: k });
  try { await auth.entitlements.jwks(); console.log('ok?!'); } catch (e) { console.log((e as Error).message); }
}
