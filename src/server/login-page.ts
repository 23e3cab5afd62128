// The login confirmation code and a minimal login page. The code is six characters from an
// alphabet without look-alikes (no 0/O, 1/I), taken from SHA-256 of the write key: the server
// sends it with the login's begin answer (the plugin shows it), and the login page computes the
// same code from the write key in its URL fragment (Web Crypto) and asks the user to confirm that
// both match before completing. A login the user did not start (a link someone sent them) then
// shows a code their plugin does not.

export const CODE_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ'; // 32 symbols: a byte's low 5 bits pick one, unbiased

/** "7KQ-M4D": the confirmation code of a write key. */
export async function confirmationCode(writeKey: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(writeKey)));
  const chars = Array.from(digest.slice(0, 6), (b) => CODE_ALPHABET[b & 31]);
  return `${chars.slice(0, 3).join('')}-${chars.slice(3).join('')}`;
}

export interface LoginPageOptions {
  /** Where the page posts the confirmation: the server's /plugin/login/complete, same origin as the page (e.g. '/api/plugin/login/complete'). */
  completeUrl: string;
  /** Shown as the heading (default "Sign in to the Figma plugin"); HTML-escaped. */
  title?: string;
  /** Shown under the heading, e.g. who is signed in (HTML-escaped). */
  account?: string;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The login page as one HTML string: serve it on your website, to signed-in users, at the URL
 * the server's `website.loginUrl` names. It reads the write key from the fragment (never sent to
 * a server), removes it from the address bar, shows the code, and posts `{ writeKey }` as
 * application/json to completeUrl once the user confirms the codes match.
 */
export function loginPageHtml(options: LoginPageOptions): string {
  const title = escapeHtml(options.title ?? 'Sign in to the Figma plugin');
  return `<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>${title}</title>
<body style="font:16px system-ui,sans-serif;max-width:32em;margin:3em auto;padding:0 1em">
<h1 style="font-size:1.3em">${title}</h1>
${options.account ? `<p>Signed in as <b>${escapeHtml(options.account)}</b>.</p>` : ''}
<p>Your plugin shows a code. Continue only if it is this one:</p>
<p id="code" style="font:600 2em ui-monospace,monospace;letter-spacing:.15em">…</p>
<button id="confirm" disabled>The codes match: sign in</button>
<p id="status" role="status"></p>
<script>
(async () => {
  const alphabet = ${JSON.stringify(CODE_ALPHABET)};
  const status = document.getElementById('status');
  const writeKey = location.hash.slice(1);
  history.replaceState(null, '', location.pathname + location.search);
  if (!/^[A-Za-z0-9_-]{16,128}$/.test(writeKey)) { status.textContent = 'This link is incomplete: start the sign-in from the plugin again.'; return; }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(writeKey)));
  const chars = Array.from(digest.slice(0, 6), (b) => alphabet[b & 31]);
  document.getElementById('code').textContent = chars.slice(0, 3).join('') + '-' + chars.slice(3).join('');
  const button = document.getElementById('confirm');
  button.disabled = false;
  button.onclick = async () => {
    button.disabled = true;
    const res = await fetch(${JSON.stringify(options.completeUrl).replace(/</g, "\\u003c")}, { method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ writeKey }) });
    const answer = await res.json().catch(() => ({}));
    status.textContent = res.ok ? 'Done: go back to Figma.' : 'Not signed in (' + (answer.error || res.status) + '). Start again from the plugin.';
    document.body.dataset.result = res.ok ? 'ok' : String(answer.error || res.status);
  };
})();
</script>
</body></html>
`;
}
