// http/: a plugin backend on the web. cors (withPluginCors: open a Request → Response handler to a
// plugin UI iframe, whose origin is "null", for the plugin routes only) and node (an adapter from
// Node's http server to such a handler, for running a backend locally).
export { withPluginCors, defaultPluginRoute, PLUGIN_ALLOW_HEADERS, WEBSITE_ONLY_ROUTES, type Handler, type PluginCorsOptions } from './cors.ts';
export { serve, toNodeListener, toRequest, writeResponse, type Served } from './node.ts';
