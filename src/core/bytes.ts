// Bytes, digests and random values with the Web platform only (Web Crypto, Uint8Array,
// TextEncoder), so that every module a backend imports runs on Node, Deno, Bun and edge runtimes
// alike: no node:crypto, no Buffer.

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: false });

/** UTF-8 bytes of a string. */
export const utf8 = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text) as Uint8Array<ArrayBuffer>;

/** A string from UTF-8 bytes (invalid sequences become U+FFFD, as Buffer#toString does). */
export const fromUtf8 = (bytes: Uint8Array): string => decoder.decode(bytes);

/** Lowercase hex. */
export function hex(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = '';
  for (const byte of view) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Bytes from hex; undefined when the text is not an even number of hex digits. */
export function fromHex(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** base64url without padding (RFC 4648 §5), as JWTs and our keys use it. */
export function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Bytes from standard base64 (PEM bodies); undefined when it is not base64. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    const binary = atob(text.replace(/\s+/g, ''));
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

/** n random bytes from the platform's CSPRNG, as base64url. */
export const randomBase64url = (n: number): string => base64url(crypto.getRandomValues(new Uint8Array(n)));

interface SyncHash {
  update(data: string | Uint8Array, encoding?: 'utf8'): SyncHash;
  digest(encoding: 'hex' | 'base64url'): string;
}

/** The synchronous part of node:crypto used here. */
export interface SyncCrypto {
  createHash(algorithm: 'sha256'): SyncHash;
  createHmac(algorithm: 'sha256', key: Uint8Array): SyncHash;
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}

/**
 * The runtime's synchronous crypto (node:crypto), where the runtime offers its built-in modules at
 * run time (`process.getBuiltinModule`: Node 20.16 and later, Deno, Bun); undefined elsewhere (edge
 * runtimes), where Web Crypto is used. Nothing imports node:crypto, so the edge graph stays free
 * of Node built-ins. Web Crypto's digest and HMAC are jobs on a thread pool, answered on a later
 * turn of the event loop: for the digest and the signature of every token check they cost several
 * times the hashing itself (BENCHMARKS.md).
 */
export const syncCrypto: SyncCrypto | undefined = (() => {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const builtin = proc?.getBuiltinModule?.('node:crypto') as Partial<SyncCrypto> | undefined;
    return typeof builtin?.createHash === 'function' && typeof builtin.createHmac === 'function' && typeof builtin.timingSafeEqual === 'function'
      ? (builtin as SyncCrypto)
      : undefined;
  } catch {
    return undefined;
  }
})();

/** Lowercase hex SHA-256 of a string's UTF-8 bytes, or of bytes. */
export async function sha256Hex(value: string | Uint8Array): Promise<string> {
  if (syncCrypto) return syncCrypto.createHash('sha256').update(value, typeof value === 'string' ? 'utf8' : undefined).digest('hex');
  return sha256HexWebCrypto(value);
}

/** The same digest by Web Crypto alone (what edge runtimes use). */
export async function sha256HexWebCrypto(value: string | Uint8Array): Promise<string> {
  const bytes = typeof value === 'string' ? utf8(value) : value;
  return hex(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
}

/** base64url SHA-256 of a string's UTF-8 bytes. */
export async function sha256Base64url(value: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', utf8(value))));
}
