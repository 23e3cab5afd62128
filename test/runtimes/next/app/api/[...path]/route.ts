// Next.js App Router, Node runtime: every method of /api/* goes to the plugin backend (OPTIONS
// included, so the preflight gets the CORS answer). The database is opened by the first request
// (not at build time, when the environment has no DATABASE_URL) and kept by the server process.
import { openPostgresJs, toNextRoute } from '../../../../../../src/edge/index.ts';
import { makeHandler } from '../../../../backend.ts';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

let backend: Promise<(request: Request) => Promise<Response>> | undefined;
const open = () => openPostgresJs(process.env.DATABASE_URL, { max: 4 }).then((db) => makeHandler(db, process.env.PLUGIN_TOKEN_SECRET!));

export const { GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS } = toNextRoute(async (request) => (await (backend ??= open()))(request));
