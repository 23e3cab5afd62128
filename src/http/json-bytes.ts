// The bytes of a JSON Response made by the plugin server, by Response: the Node adapter writes
// them with the headers in one piece instead of reading the body stream back. Only a Response whose
// body is exactly these bytes is registered; a Response whose body was read is written from its
// stream as any other (the adapter checks bodyUsed).
export const jsonBytes = new WeakMap<Response, Uint8Array<ArrayBuffer>>();

/** A JSON Response of these bytes, with its declared length, registered in jsonBytes. */
export function jsonResponse(bytes: Uint8Array<ArrayBuffer>, status: number, headers: Record<string, string>): Response {
  const response = new Response(bytes, { status, headers: { ...headers, 'content-type': 'application/json', 'content-length': String(bytes.byteLength) } });
  jsonBytes.set(response, bytes);
  return response;
}
