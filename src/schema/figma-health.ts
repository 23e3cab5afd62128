// Whether Figma accepted the personal access token last time, for `status` and `verify`. The
// library records each acceptance and refusal (public.figma_api_state, sql/015); nothing of the
// token itself is stored, so a rotated token clears the warning at its first successful check.
/** Reads the latest value of a timestamp column (a status source: SQL or Supabase's REST API). */
export interface LatestSource {
  latest(table: string, column: string): Promise<string | null>;
}

/** Warnings about the Figma configuration, as stable-code-first sentences; empty when all is well. */
export async function figmaWarnings(source: LatestSource): Promise<string[]> {
  const rejected = await source.latest('figma_api_state', 'last_rejected_at');
  if (!rejected) return [];
  const ok = await source.latest('figma_api_state', 'last_ok_at');
  if (ok && ok > rejected) return [];
  return [
    `figma_token_invalid: Figma refused the personal access token (HTTP 401/403) at ${rejected}` +
      `${ok ? `, after it last worked at ${ok}` : ''}; Figma purchases cannot be checked. Create a new token for the plugin's owner ` +
      '(they expire after at most 90 days) and set it in figma.personalAccessToken; this warning clears at the next successful check.',
  ];
}
