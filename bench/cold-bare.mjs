// The bare server of the cold-start lines of `npm run bench`: plain JavaScript on Node, no library.
// It opens the same database as `serve` (a pg pool and one query for a postgres:// URL, PGlite on
// the directory for pglite:<dir>), listens on PORT, and answers every request with one query.
import { createServer } from 'node:http';

const url = process.env.DATABASE_URL;
let query;
if (url.startsWith('pglite:')) {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create(url.slice('pglite:'.length));
  query = (text) => db.query(text);
} else {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  query = (text) => pool.query(text);
}
await query('SELECT 1');
const server = createServer(async (req, res) => {
  await query('SELECT 1');
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
