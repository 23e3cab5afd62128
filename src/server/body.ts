// Reading a request body under a byte cap, while it streams: the declared length is checked first,
// then every chunk as it arrives; past the cap the stream is cancelled (nothing more is read) and
// the request is refused with body_too_large. Web streams only: runs on every runtime (from the Node
// adapter serving the handler as it is, the body comes from Node's request instead: http/direct.ts).
import { ValidationError } from '../core/errors.ts';
import { directRequests } from '../http/direct.ts';

/** The default caps, in bytes: JSON from the plugin or the login page, and the stores' webhooks. */
export const DEFAULT_LIMITS = { json: 16 * 1024, webhook: 1024 * 1024 } as const;

export async function readBody(request: Request, cap: number): Promise<Uint8Array> {
  const tooLarge = () => new ValidationError('body_too_large', `body_too_large: the body is larger than this route's ${cap} bytes`);
  const declared = request.headers.get('content-length');
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > cap) {
    await cancelBody(request);
    throw tooLarge();
  }
  // Served by the Node adapter as it is: the body comes from Node's request, under the same cap.
  const source = directRequests.get(request);
  if (source) {
    const bytes = await source.read(cap);
    if (!bytes) throw tooLarge();
    return bytes;
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** Nothing more of the body is read: its stream is cancelled (or, from the Node adapter, its source). */
export async function cancelBody(request: Request): Promise<void> {
  directRequests.get(request)?.cancel();
  await request.body?.cancel().catch(() => {});
}

/** The media type of a content-type header, lower-cased, without parameters. */
export const mediaType = (request: Request): string => (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();

/** Requires `content-type: application/json`: a form or text/plain POST is what a cross-site page can send without asking. */
export function requireJson(request: Request): void {
  if (mediaType(request) !== 'application/json') {
    throw new ValidationError('unsupported_media_type', 'unsupported_media_type: send the body as application/json');
  }
}

/**
 * The body as a JSON object. Malformed JSON and any other JSON value are invalid_json; the
 * parser's message (which quotes the body) is dropped, never logged or answered.
 */
export async function readJsonObject(request: Request, cap: number): Promise<Record<string, unknown>> {
  requireJson(request);
  return parseJsonObject(await readBody(request, cap));
}

/** The same for a route whose body is optional: an empty body is `{}`; any other must be a JSON object sent as application/json. */
export async function readOptionalJsonObject(request: Request, cap: number): Promise<Record<string, unknown>> {
  const bytes = await readBody(request, cap);
  if (bytes.byteLength === 0) return {};
  requireJson(request);
  return parseJsonObject(bytes);
}

function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new ValidationError('invalid_json', 'invalid_json: the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError('invalid_json', 'invalid_json: the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}
