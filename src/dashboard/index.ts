// dashboard/: the operator's dashboard. handler (one web-standard Request → Response function, to
// mount behind a host's own admin login), server (the local server of `figma-plugin-auth-db
// dashboard`, with its access key), queries (every number, read from rollups and indexes), page and
// svg (server-rendered HTML and charts: no script, no request beyond the server).
export { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './handler.ts';
export { startDashboardServer, type DashboardServer, type DashboardServerOptions } from './server.ts';
