// Bun: Bun.serve, the database from DATABASE_URL through postgres.js. Prints "READY <port>".
import { openPostgresJs } from '../../src/edge/index.ts';
import { makeHandler } from './backend.ts';

declare const Bun: { serve(options: { port: number; hostname: string; fetch: (request: Request) => Promise<Response> }): { port: number } };
declare const process: { env: Record<string, string | undefined> };

const db = await openPostgresJs(process.env.DATABASE_URL, { max: 4 });
const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: makeHandler(db, process.env.PLUGIN_TOKEN_SECRET!) });
console.log(`READY ${server.port}`);
