// Supabase Auth sessions as the website login: a `website.userId` for createPluginServer that
// accepts a Supabase access token, from `Authorization: Bearer …` or from the session cookie that
// @supabase/ssr writes (`sb-<project-ref>-auth-token`, possibly split into `.0`, `.1`, … and
// possibly `base64-`-encoded JSON holding `access_token`). The token is verified with jose: against
// the project's JWKS (asymmetric signing keys, ES256/RS256) or, for projects still on the legacy
// secret, HS256 with the JWT secret. Audience `authenticated` and the project's issuer are
// required; an expired, foreign, anonymous or wrongly signed token is "nobody is signed in" (null).
// The user is the token's `sub`, the id of the `public.users` row that the opt-in Supabase user sync
// (docs/sign-in.md) keeps for each `auth.users` row; pass `userId` to map claims another way.
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { loadJose } from '../core/jose.ts';
import { SetupError } from '../core/errors.ts';

export interface SupabaseWebsiteUserOptions {
  /** https://<project-ref>.supabase.co: JWKS at /auth/v1/.well-known/jwks.json, issuer /auth/v1. */
  projectUrl?: string;
  /** The JWKS URL when it is not the project's default. */
  jwksUrl?: string;
  /** Legacy projects: the JWT secret (HS256). Server-side only. */
  jwtSecret?: string;
  /** Expected `aud` (default 'authenticated'). */
  audience?: string;
  /** Expected `iss` (default `${projectUrl}/auth/v1`; required without projectUrl). */
  issuer?: string;
  /** Accept anonymous users (`is_anonymous: true`); default false. */
  allowAnonymous?: boolean;
  /** Maps verified claims to a users.id (default: `sub`). */
  userId?: (claims: JWTPayload) => string | null | Promise<string | null>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COOKIE = /^sb-[A-Za-z0-9_-]{1,100}-auth-token(?:\.(\d{1,2}))?$/;
const bad = (why: string) => new SetupError('server_config_invalid', `server_config_invalid: supabaseWebsiteUser: ${why}`);

export function supabaseWebsiteUser(options: SupabaseWebsiteUserOptions): (request: Request) => Promise<string | null> {
  const project = options.projectUrl === undefined ? undefined : httpsOrigin(options.projectUrl, 'projectUrl');
  const issuer = options.issuer ?? (project ? `${project}/auth/v1` : undefined);
  if (!issuer) throw bad('give projectUrl, or issuer with jwksUrl or jwtSecret');
  const audience = options.audience ?? 'authenticated';
  // The remote key set is made on the first request (jose is loaded then: core/jose.ts).
  let key: JWTVerifyGetKey | Uint8Array | undefined;
  let jwksUrl: URL | undefined;
  let algorithms: string[];
  if (options.jwtSecret !== undefined) {
    if (typeof options.jwtSecret !== 'string' || options.jwtSecret.length < 32) throw bad('jwtSecret must be the project\'s JWT secret (32 characters or more)');
    key = new TextEncoder().encode(options.jwtSecret);
    algorithms = ['HS256'];
  } else {
    const jwks = options.jwksUrl ?? (project ? `${project}/auth/v1/.well-known/jwks.json` : undefined);
    if (!jwks) throw bad('give projectUrl, jwksUrl or jwtSecret');
    jwksUrl = new URL(jwks);
    algorithms = ['ES256', 'RS256', 'EdDSA'];
  }

  return async (request: Request) => {
    const token = bearer(request) ?? fromCookie(request.headers.get('cookie'));
    if (!token) return null;
    const { createRemoteJWKSet, jwtVerify } = await loadJose();
    key ??= createRemoteJWKSet(jwksUrl!);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, key as Uint8Array, { algorithms, audience, issuer, requiredClaims: ['exp', 'sub'] }));
    } catch {
      return null; // expired, another project's, wrongly signed, malformed: nobody is signed in
    }
    if (claims.is_anonymous === true && !options.allowAnonymous) return null;
    if (options.userId) return options.userId(claims);
    return typeof claims.sub === 'string' && UUID.test(claims.sub) ? claims.sub : null;
  };
}

function httpsOrigin(value: string, name: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(`${name} must be a URL such as https://<project-ref>.supabase.co`);
  }
  if (!['https:', 'http:'].includes(url.protocol)) throw bad(`${name} must be a URL such as https://<project-ref>.supabase.co`);
  return url.origin;
}

function bearer(request: Request): string | null {
  return /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(request.headers.get('authorization') ?? '')?.[1] ?? null;
}

/** The access token in @supabase/ssr's session cookie (joined from its chunks), or null. */
export function fromCookie(header: string | null): string | null {
  if (!header) return null;
  const whole = new Map<string, string>();
  const chunks = new Map<string, string[]>();
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 1) continue;
    const name = part.slice(0, eq).trim();
    const match = COOKIE.exec(name);
    if (!match) continue;
    const value = part.slice(eq + 1).trim();
    if (match[1] === undefined) whole.set(name, value);
    else {
      const base = name.slice(0, name.lastIndexOf('.'));
      const list = chunks.get(base) ?? [];
      list[Number(match[1])] = value;
      chunks.set(base, list);
    }
  }
  const raw = [...whole.values()][0] ?? [...chunks.values()].map((list) => (list.includes(undefined as never) ? '' : list.join('')))[0];
  if (!raw || raw.length > 32_768) return null;
  try {
    const text = raw.startsWith('base64-') ? decodeBase64url(raw.slice('base64-'.length)) : decodeURIComponent(raw);
    const session = JSON.parse(text) as unknown;
    // A session object ({ access_token, … }), or the older array form [access_token, refresh_token, …].
    const token = Array.isArray(session) ? session[0] : (session as { access_token?: unknown } | null)?.access_token;
    return typeof token === 'string' && token.length <= 16_384 ? token : null;
  } catch {
    return null;
  }
}

function decodeBase64url(text: string): string {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}
