// The input limits, each stated once. validation.ts enforces them before any round trip, errors.ts
// words its table with them (so docs/reference/errors.md, generated from that table, cannot publish
// another number), and test/core.validation.test.ts checks each against what the installed SQL
// functions enforce, the last line for supabase.rpc callers. Imports nothing.

/** Metered actions: 1 to 64 of these characters. The SQL functions use the same pattern text. */
export const ACTION_CHARACTERS = 'A-Za-z0-9_.:-';
export const MAX_ACTION_LENGTH = 64;
/** ACTION_CHARACTERS for people: the same set, spaced out for messages and docs. */
export const ACTION_CHARACTERS_TEXT = ACTION_CHARACTERS.replace(/(?<!^)(?=[^-]|-$)/g, ' ').replace(/([A-Za-z0-9]) (?=-)/g, '$1').replace(/- (?=[A-Za-z0-9])/g, '-');
/** The pattern as both sides spell it: a JavaScript RegExp source and a PostgreSQL `~` pattern. */
export const ACTION_PATTERN = `^[${ACTION_CHARACTERS}]{1,${MAX_ACTION_LENGTH}}$`;

/** A batch (items of one consume): 1 to this many. One call still counts as one operation. */
export const MAX_ITEMS = 10_000;
/** Idempotency keys, device names, revocation reasons: at most this many characters. */
export const MAX_TEXT_LENGTH = 255;
/** Usage metadata, as the UTF-8 length of its jsonb text (measured by consume_usage). */
export const MAX_METADATA_BYTES = 16_384;
/** Stripe event times may run ahead of our clock by this much (clock skew); the SQL uses the same. */
export const MAX_EVENT_SKEW_MS = 5 * 60_000;

export const DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600;
/** Shorter than a minute risks the token expiring on its way to the plugin. */
export const MIN_TOKEN_TTL_SECONDS = 60;
export const MAX_TOKEN_TTL_SECONDS = 365 * 24 * 3600;
/** A login hand-over lives this long at least and at most (the SQL refuses the same). */
export const MIN_LOGIN_TTL_SECONDS = 10;
export const MAX_LOGIN_TTL_SECONDS = 3600;
/** maxTokensPerUser: a whole number of at least this (no upper bound). */
export const MIN_MAX_TOKENS = 1;

export const MAX_LICENSE_KEY_LENGTH = 255;

/** A team invitation's claim link lives this long by default, at least and at most (the SQL refuses the same). */
export const DEFAULT_INVITATION_TTL_SECONDS = 7 * 24 * 3600;
export const MIN_INVITATION_TTL_SECONDS = 600;
export const MAX_INVITATION_TTL_SECONDS = 30 * 24 * 3600;
/** Pending invitations an owner may have at once (team_invite's p_max_pending default). */
export const MAX_PENDING_INVITATIONS = 1000;
