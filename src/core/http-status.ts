// The one contract between the library's errors and HTTP: which status each error code is answered
// with (src/server/ answers with it), and what a status means to the plugin (src/plugin/client.ts
// acts on it). No imports and no Node built-ins: the browser-side client bundles this file too.

/** The status for each error class, unless STATUS_BY_CODE names the code. */
export const STATUS_BY_CLASS: Readonly<Record<string, number>> = {
  ValidationError: 400, // the request is wrong; retrying will not help
  NotFoundError: 400,
  AuthError: 401, // sign in again
  ServiceError: 503, // Figma or a store is down (a webhook sender retries on it)
  SetupError: 500, // the server is misconfigured
  DatabaseError: 500,
};

/** Codes whose status is not their class's, and the HTTP-only codes the server answers with. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  // A one-time step expired or was used: the plugin starts the login over.
  login_not_found: 410,
  login_expired: 410,
  login_already_completed: 410,
  // Refusals that are not about the session: the plugin keeps its token (401 would sign it out).
  license_in_use: 403,
  device_limit_reached: 403,
  license_key_rejected: 403,
  // The store does not know the key (yet): the plugin says so and may try again in a minute.
  license_key_unknown: 404,
  no_seats_left: 403,
  // Lease reasons (docs/licenses.md#reasons): the license says no on this device; the session stays.
  license_expired: 403,
  license_suspended: 403,
  license_refunded: 403,
  license_disputed: 403,
  license_not_linked: 403,
  not_activated_on_device: 403,
  heartbeat_missed: 403,
  no_license: 403,
  seat_taken: 409,
  // Teams: a claim link that is spent is gone (the member asks for a new one); one meant for
  // someone else, or a team that is not the caller's, is refused without signing anyone out.
  invitation_not_found: 404,
  invitation_expired: 410,
  invitation_used: 410,
  invitation_not_for_you: 403,
  team_not_found: 404,
  seat_not_found: 404,
  team_transfer_blocked: 409,
  cross_site_request: 403,
  // A retry key used for another operation, after a refund or after its retry window: the
  // request conflicts with what the key already stands for; send it again with a new key.
  idempotency_key_reused: 409,
  // Stripe: fixable on our side (link the price, set metadata.user_id); Stripe retries non-2xx for days.
  unknown_price: 422,
  unknown_customer: 422,
  // Stripe's API refused our key or our request: the server's fault, not the plugin's.
  stripe_auth_failed: 502,
  stripe_request_failed: 502,
  // A portal link before any checkout: the plugin offers the checkout instead.
  no_stripe_customer: 409,
  // The request's envelope.
  invalid_json: 400,
  body_too_large: 413,
  unsupported_media_type: 415,
  not_signed_in: 401,
  // The database connection was lost mid-call (a failover, a restart): retry with the same key.
  connection_lost: 503,
  // HTTP-only codes (no PluginAuthError carries them).
  not_found: 404,
  method_not_allowed: 405,
  internal_error: 500,
};

/** The HTTP status for an error of the library (by its class name and code); 500 for anything else. */
export function httpStatusOf(error: { name?: unknown; code?: unknown }): number {
  const code = typeof error.code === 'string' ? error.code : '';
  const byCode = STATUS_BY_CODE[code];
  if (byCode !== undefined) return byCode;
  return (typeof error.name === 'string' ? STATUS_BY_CLASS[error.name] : undefined) ?? 500;
}

/** What a response status means to the plugin. */
export type ClientOutcome =
  | 'ok' // 2xx
  | 'sign_in_again' // 401: the token is gone or refused
  | 'upgrade' // 402: the plan says no (the body is the usage answer)
  | 'start_over' // 410: a login expired or was used
  | 'retry' // 5xx (and 408, 429): retry with the same Idempotency-Key
  | 'refused'; // any other 4xx: the request itself is wrong

export function clientOutcome(status: number): ClientOutcome {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 401) return 'sign_in_again';
  if (status === 402) return 'upgrade';
  if (status === 410) return 'start_over';
  if (status >= 500 || status === 408 || status === 429) return 'retry';
  return 'refused';
}
