// The bare side of the Deno cold-start line of `npm run bench`: no library, only the recipe's
// driver (postgres.js, resolved as bench/cold-deno.ts resolves it). It opens the same database
// (DATABASE_URL), runs one query, listens on 127.0.0.1:PORT and answers every request with one query,
// as bench/cold-bare.mjs does on Node.
import postgres from 'postgres';

declare const Deno: {
  env: { get(name: string): string | undefined };
  serve(options: { port: number; hostname: string; onListen(addr: { port: number }): void }, handler: (request: Request) => Promise<Response>): unknown;
  addSignalListener(signal: 'SIGTERM', handler: () => void): void;
  exit(code: number): never;
};

const sql = postgres(Deno.env.get('DATABASE_URL')!, { max: 4, onnotice: () => {} });
await sql`SELECT 1`;
Deno.serve({ port: Number(Deno.env.get('PORT')), hostname: '127.0.0.1', onListen: () => {} }, async () => {
  await sql`SELECT 1`;
  return Response.json({ status: 'ok' });
});
Deno.addSignalListener('SIGTERM', () => Deno.exit(0));
