// The server a benchmark runs on: BENCH_DATABASE_URL (an admin URL), or a throwaway one.
import pg from 'pg';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../scripts/throwaway-postgres.ts';

/** Runs one statement on its own connection (CREATE/DROP DATABASE cannot run in a pool's transaction). */
export async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The URL of another database on the same server. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function benchServer(flags: string[]): Promise<{ url: string; throwaway?: ThrowawayPostgres }> {
  const url = process.env.BENCH_DATABASE_URL;
  if (url) return { url };
  const throwaway = await startThrowawayPostgres({ flags });
  return { url: throwaway.url, throwaway };
}
