/**
 * Secrets never reach a message, a log line or a report. Everything this package prints about a
 * target or a failure passes through redact().
 */

/** postgres://user:secret@host/db → postgres://user:***@host/db; unparseable input is not echoed. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    parsed.search = parsed.search ? '?***' : '';
    return parsed.toString();
  } catch {
    return '<unparseable URL>';
  }
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]*@/gi;
// A JWT (Supabase keys, plugin tokens): three base64url segments, the first starting with eyJ.
const JWT = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}/g;
// Supabase's newer API keys.
const SUPABASE_KEY = /\bsb_(secret|publishable)_[A-Za-z0-9_-]{8,}/g;

/**
 * Removes credentials from text: URL passwords, JWTs, Supabase keys, and every value given in
 * `secrets` (the configured password, service-role key, token secret) wherever it appears.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out.replace(URL_CREDENTIALS, '$1:***@').replace(JWT, '***').replace(SUPABASE_KEY, '***');
}

/** The secret values found in an environment, for redact(). */
export function secretsOf(env: Record<string, string | undefined>): string[] {
  const secrets: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue;
    if (/KEY|SECRET|PASSWORD|TOKEN/i.test(name)) secrets.push(value);
    if (/URL$/i.test(name)) {
      try {
        const parsed = new URL(value);
        if (parsed.password) secrets.push(decodeURIComponent(parsed.password), parsed.password);
      } catch {
        // not a URL: nothing to extract
      }
    }
  }
  return secrets;
}
