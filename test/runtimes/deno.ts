// Deno, as a Supabase Edge Function runs: Deno.serve, the database from SUPABASE_DB_URL (Supabase
// sets it for every function), postgres.js. Prints "READY <port>" once listening.
import { openPostgresJs } from '../../src/edge/index.ts';
import { makeHandler } from './backend.ts';

declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { port: number; hostname: string; onListen(addr: { port: number }): void }, handler: (request: Request) => Promise<Response>): unknown;
};

const db = await openPostgresJs(Deno.env.get('SUPABASE_DB_URL'), { max: 4 });
const handler = makeHandler(db, Deno.env.get('PLUGIN_TOKEN_SECRET')!);
Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: ({ port }) => console.log(`READY ${port}`) }, handler);
