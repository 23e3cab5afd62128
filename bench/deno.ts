// The Deno of the bench's Deno lines (cold start, HTTP): the binary `npm run test:runtimes` installs
// (scripts/test-runtimes.ts, BIN), not a dependency of the package. Without it those lines are not
// run, and the bench says so.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export const DENO_BIN = join(ROOT, 'test', 'runtimes', 'node_modules', '.bin', 'deno');

/** `deno run` of a file of bench/: bare imports resolve from the package's node_modules, as in test/runtimes/deno.ts; no lockfile is written. */
export const denoRunArgs = (file: string): string[] => ['run', '--no-lock', '--allow-net', '--allow-env', '--allow-read', join(ROOT, 'bench', file)];
