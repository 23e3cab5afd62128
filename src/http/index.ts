export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, type Handler, type PluginCorsOptions } from './cors.ts';
export { serve, toNodeListener, toRequest, writeResponse, type Served } from './node.ts';
