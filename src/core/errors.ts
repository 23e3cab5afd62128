/**
 * Every failure the library reports is a PluginAuthError with a stable `code` (listed in the
 * README). Messages name what to fix and never contain a token, key or password.
 */
export class PluginAuthError extends Error {
  readonly code: string;
  override readonly cause?: unknown;
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    if (options.cause !== undefined) this.cause = options.cause;
  }
}

/** Bad input: nothing was written. */
export class ValidationError extends PluginAuthError {}
/** A referenced row (user, plan, token, login request, Stripe customer or price) does not exist. */
export class NotFoundError extends PluginAuthError {}
/** A plugin token or login key that must be refused. */
export class AuthError extends PluginAuthError {}
/** Setup or schema verification failed. */
export class SetupError extends PluginAuthError {}
/** The database refused or failed in a way this library does not model. */
export class DatabaseError extends PluginAuthError {}
/** An outside service (Figma's Payments API) refused our credentials or did not answer usefully. */
export class ServiceError extends PluginAuthError {}

/**
 * SQLSTATEs raised by our own SQL functions (class "PA"), mapped to the TypeScript error classes.
 * The SQL message starts with the stable code ("unknown_user: ..."), so rpc callers see it too.
 */
const SQLSTATE_CLASSES: Record<string, new (code: string, message: string, o?: { cause?: unknown }) => PluginAuthError> = {
  PA001: NotFoundError, // unknown_user
  PA002: ValidationError, // invalid_items
  PA003: ValidationError, // invalid_action
  PA004: ValidationError, // invalid_idempotency_key
  PA005: ValidationError, // invalid_metadata
  PA006: ValidationError, // invalid_date
  PA007: NotFoundError, // no_plan
  PA008: NotFoundError, // unknown_idempotency_key
  PA009: ValidationError, // idempotency_key_reused
  PA010: SetupError, // schema_modified
  PA011: SetupError, // schema_newer
  PA012: SetupError, // schema_drift
  PA013: SetupError, // untrusted_object
  PA014: SetupError, // schema_create_open
  PA015: SetupError, // invalid_object
  PA020: ValidationError, // invalid_device_name
  PA021: ValidationError, // invalid_ttl
  PA022: NotFoundError, // token_not_found
  PA023: ValidationError, // invalid_reason
  PA024: ValidationError, // invalid_cutoff
  PA025: NotFoundError, // login_not_found
  PA026: AuthError, // login_expired
  PA027: AuthError, // login_already_completed
  PA028: ValidationError, // invalid_max_tokens
  PA029: ValidationError, // invalid_digest
  PA030: ValidationError, // invalid_subscription
  PA031: ValidationError, // invalid_event_created
  PA032: NotFoundError, // unknown_customer
  PA033: NotFoundError, // unknown_price
  PA034: NotFoundError, // unknown_plan
  PA035: ValidationError, // invalid_until
  PA036: ValidationError, // price_already_linked
  PA037: ValidationError, // invalid_stripe_id
  PA060: ValidationError, // invalid_figma_user_id
  PA061: ValidationError, // invalid_figma_link
  PA062: ValidationError, // invalid_trial_days
  PA063: ValidationError, // figma_user_linked
  PA064: ValidationError, // invalid_grace
  PA065: ValidationError, // invalid_figma_answer
  PA080: ValidationError, // invalid_license_provider
  PA081: ValidationError, // invalid_license_product
  PA082: ValidationError, // invalid_license_link
  PA083: ValidationError, // invalid_license_answer
  PA084: AuthError, // license_in_use
  PA085: AuthError, // device_limit_reached
  PA086: NotFoundError, // license_not_found
  PA087: AuthError, // no_seats_left
  PA088: ValidationError, // seat_taken
  PA089: ValidationError, // invalid_event_id
  PA070: ValidationError, // invalid_days
  PA071: ValidationError, // invalid_cutoff
  PA072: ValidationError, // invalid_batch_size
};

interface PgLikeError {
  code?: unknown;
  message?: unknown;
}

/** The SQLSTATE of a driver error (pg and PGlite both expose it as `code`). */
export function sqlState(error: unknown): string | undefined {
  const code = (error as PgLikeError | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Turns a driver error into a typed error. Errors raised by our SQL functions keep their stable
 * code; anything else becomes a DatabaseError coded by SQLSTATE class, with the server's message
 * (server messages never contain our parameters' values: we never interpolate them).
 */
export function fromDatabaseError(error: unknown): PluginAuthError {
  if (error instanceof PluginAuthError) return error;
  const state = sqlState(error);
  const message = String((error as PgLikeError | null)?.message ?? error);
  const Class = state ? SQLSTATE_CLASSES[state] : undefined;
  if (Class) {
    const match = /^([a-z_]+): /.exec(message);
    return new Class(match?.[1] ?? 'database_error', message, { cause: error });
  }
  if (state === '23503') return new NotFoundError('foreign_key_violation', message, { cause: error });
  if (state === '23514') return new ValidationError('check_violation', message, { cause: error });
  // Class 22 (data exception: malformed uuid/date/number/json text, NUL in text, values out of
  // range) is always the caller's input, never the database's fault.
  if (state?.startsWith('22')) return new ValidationError('invalid_input', message, { cause: error });
  if (state === '23505') return new ValidationError('unique_violation', message, { cause: error });
  return new DatabaseError('database_error', message, { cause: error });
}
