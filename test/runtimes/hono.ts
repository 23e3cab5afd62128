// Hono on Node (@hono/node-server): the plugin backend mounted under /api/* of a Hono app, which
// hands it the web-standard Request. Prints "READY <port>".
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import { openPostgresJs } from '../../src/edge/index.ts';
import { makeHandler } from './backend.ts';

const db = await openPostgresJs(process.env.DATABASE_URL, { max: 4 });
const handle = makeHandler(db, process.env.PLUGIN_TOKEN_SECRET!);
const app = new Hono();
app.get('/health', (c) => c.text('ok'));
app.all('/api/*', (c) => handle(c.req.raw));
serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, ({ port }) => console.log(`READY ${port}`));
