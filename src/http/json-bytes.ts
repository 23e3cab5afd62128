// The bytes of a JSON Response made by the plugin server, by Response: the Node adapter writes
// them with the headers in one piece instead of reading the body stream back. Only a Response whose
// body is exactly these bytes is registered; a Response whose body was read is written from its
// stream as any other (the adapter checks bodyUsed). A Response made by bodylessJsonResponse has
// no body at all until withJsonBody gives it one: only the Node adapter may receive it as it is
// (direct.ts), as it writes the registered bytes.
export const jsonBytes = new WeakMap<Response, Uint8Array<ArrayBuffer>>();

const headersOf = (bytes: Uint8Array, headers: Record<string, string>) => ({ ...headers, 'content-type': 'application/json', 'content-length': String(bytes.byteLength) });

/** A JSON Response of these bytes, with its declared length, registered in jsonBytes. */
export function jsonResponse(bytes: Uint8Array<ArrayBuffer>, status: number, headers: Record<string, string>): Response {
  const response = new Response(bytes, { status, headers: headersOf(bytes, headers) });
  jsonBytes.set(response, bytes);
  return response;
}

/** The same status and headers without a body stream (`body` null), the bytes registered in jsonBytes. */
export function bodylessJsonResponse(bytes: Uint8Array<ArrayBuffer>, status: number, headers: Record<string, string>): Response {
  const response = new Response(null, { status, headers: headersOf(bytes, headers) });
  jsonBytes.set(response, bytes);
  return response;
}

/** A body-less JSON Response made whole (its registered bytes as its body); any other Response as it is. */
export function withJsonBody(response: Response): Response {
  const bytes = jsonBytes.get(response);
  if (!bytes || response.body !== null) return response;
  const whole = new Response(bytes, { status: response.status, statusText: response.statusText, headers: response.headers });
  jsonBytes.set(whole, bytes);
  return whole;
}
