// UI iframe: sign in, metered resizes with typed results, the offline entitlement snapshot.
import { createPluginClient, verifyEntitlementSnapshot } from '../../src/plugin/index.ts';

declare const API_BASE_URL: string; // set by scripts/build-example-plugin.ts (PLUGIN_API_URL)

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = (text: string) => ($('status').textContent = text);
const client = createPluginClient({
  apiBaseUrl: API_BASE_URL,
  onLoginUrl: (url) => {
    $<HTMLAnchorElement>('login-url').href = url;
    $('login-link').hidden = false;
  },
});

function show(signedIn: boolean) {
  $('signed-out').hidden = signedIn;
  $('signed-in').hidden = !signedIn;
  $('login-link').hidden = true;
}

async function refreshPlan() {
  const [snapshot, jwks] = await Promise.all([
    client.call<{ jwt: string }>('/plugin/entitlements'),
    fetch(`${API_BASE_URL}/plugin/jwks`).then((r) => r.json()),
  ]);
  if (snapshot.kind === 'sign_in_again') return show(false);
  if (snapshot.kind !== 'ok') return;
  const userId = await client.userId();
  if (!userId) return show(false);
  const checked = await verifyEntitlementSnapshot(snapshot.data.jwt, jwks, { userId });
  if (checked.kind !== 'ok') return;
  const { plan, remaining, resetsAt } = checked.entitlement;
  $('plan').textContent = `Plan: ${plan}. ${remaining === null ? 'Unlimited resizes' : `${remaining} resize(s) left`}` +
    (resetsAt ? `, resets ${resetsAt.toLocaleTimeString()}` : '');
  $<HTMLButtonElement>('resize').disabled = remaining === 0;
}

$('sign-in').onclick = async () => {
  status('Finish signing in in your browser…');
  const result = await client.signIn();
  if (result.kind === 'ok') {
    show(true);
    status('');
    await refreshPlan();
  } else if (result.kind === 'start_over') status('The sign-in expired. Try again.');
  else status(`Cannot sign in right now (${result.kind}).`);
};

$('resize').onclick = async () => {
  const layers = await new Promise<number>((resolve) => {
    window.addEventListener('message', function once(event) {
      if (event.data?.pluginMessage?.type !== 'selection-size') return;
      window.removeEventListener('message', once);
      resolve(event.data.pluginMessage.layers);
    });
    parent.postMessage({ pluginMessage: { type: 'selection-size' } }, '*');
  });
  const result = await client.call<{ remaining: number | null }>('/plugin/resize', { layers: Math.max(1, layers) });
  switch (result.kind) {
    case 'ok':
      parent.postMessage({ pluginMessage: { type: 'resize', factor: 2 } }, '*');
      status('');
      break;
    case 'upgrade': // 402: the plan says no
      status(result.usage.reason === 'batch_too_large'
        ? `Your plan resizes ${result.usage.batchLimit} layer(s) at a time.`
        : 'No resizes left on your plan.');
      if ((await client.checkout('PAID_FEATURE')) === 'PAID') status('Thanks! Try again.');
      break;
    case 'sign_in_again': // 401
      show(false);
      status('Please sign in again.');
      break;
    default:
      status(`Something went wrong (${result.kind}).`);
  }
  await refreshPlan();
};

$('sign-out').onclick = async () => {
  await client.signOut();
  show(false);
};

void client.restore().then(async (signedIn) => {
  show(signedIn);
  if (signedIn) await refreshPlan();
});
