// What the Node adapter (node.ts) and createPluginServer (server/server.ts) agree on when the
// server's handler is served by the adapter as it is, unwrapped: the adapter then hands it a
// Request without a body stream, the body being read straight from Node's request under the
// route's byte cap (server/body.ts), and the server may answer JSON as a Response without a body
// stream, whose bytes (json-bytes.ts) the adapter writes. A web stream per request body and per
// answer was the largest cost of a request through the adapter (BENCHMARKS.md, the HTTP line).
// Any other handler, and the server's handler on any other runtime, gets and gives full web
// Requests and Responses. Web-standard only: no Node import here.

/** A request body as the adapter reads it: once, whole, under a cap. */
export interface BodySource {
  /** The whole body, or null when it grew past `cap` bytes (reading then stops). Rejects on a second read or a broken upload. */
  read(cap: number): Promise<Uint8Array | null>;
  /** Nothing more is read (the adapter closes the connection after its answer). */
  cancel(): void;
}

/** Handlers that read their requests' bodies through directRequests and may answer body-less JSON. */
export const directHandlers = new WeakSet<object>();

/** Requests the adapter made for a direct handler: their body (null: none, e.g. GET). */
export const directRequests = new WeakMap<Request, BodySource | null>();
