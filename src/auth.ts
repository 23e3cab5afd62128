import type { Database } from './db.ts';
import { createUsage } from './usage.ts';

/** Options of createPluginAuth. Each part documents its own. */
export interface PluginAuthOptions {
  /**
   * HS256 secret for plugin tokens (PLUGIN_TOKEN_SECRET): at least 32 bytes. Needed only by
   * `tokens`; the other parts work without it.
   */
  tokenSecret?: string;
}

/**
 * The library's entry point: one object per database, grouping the parts of the product.
 * Every part is a thin, typed layer over the SQL functions installed by setup.
 */
export function createPluginAuth(db: Database, options: PluginAuthOptions = {}) {
  void options;
  return {
    db,
    usage: createUsage(db),
  };
}

export type PluginAuth = ReturnType<typeof createPluginAuth>;
