// Assertions the test files share.
import assert from 'node:assert/strict';
import { PluginAuthError } from '../../src/core/errors.ts';

/** The promise rejects with a `Class` (a PluginAuthError subclass) carrying `code`; `also` checks more. */
export async function rejectsWith(
  promise: Promise<unknown>,
  Class: typeof PluginAuthError,
  code: string,
  also?: (e: PluginAuthError) => void,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Class, `expected ${Class.name}, got ${String(error)}`);
    assert.equal((error as PluginAuthError).code, code, String(error));
    also?.(error as PluginAuthError);
    return true;
  });
}
