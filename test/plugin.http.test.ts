// withPluginCors (preflights, headers on every plugin-route response, closed routes), the Node
// http adapter, and `npm run example:backend` serving the example backend on both databases.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { DIALECTS, withDatabase } from './helpers/databases.ts';
import { ROOT } from './helpers/run.ts';
import { serve, withPluginCors } from '../src/http/index.ts';
import { verifyEntitlementSnapshot } from '../src/plugin/index.ts';

const preflight = (path: string, method = 'POST') =>
  new Request(`http://api.test${path}`, {
    method: 'OPTIONS',
    headers: { origin: 'null', 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type,idempotency-key' },
  });
const post = (path: string) => new Request(`http://api.test${path}`, { method: 'POST', headers: { origin: 'null' }, body: '{}' });

describe('withPluginCors', () => {
  test('answers preflights on plugin routes itself, for any origin including null, without credentials', async () => {
    let calls = 0;
    const handle = withPluginCors(() => {
      calls++;
      return new Response('no');
    });
    for (const path of ['/plugin/login', '/plugin/login/poll', '/plugin/resize']) {
      const res = await handle(preflight(path));
      assert.equal(res.status, 204, path);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.deepEqual(res.headers.get('access-control-allow-headers')!.split(', ').sort(), ['authorization', 'content-type', 'idempotency-key']);
      assert.deepEqual(res.headers.get('access-control-allow-methods')!.split(', '), ['GET', 'POST']);
      assert.equal(res.headers.get('access-control-max-age'), '600');
      assert.equal(res.headers.get('access-control-allow-credentials'), null);
    }
    assert.equal(calls, 0, 'the handler never sees a preflight');
  });

  test('every plugin-route response carries the headers: errors, throws, and immutable upstream responses', async () => {
    const errors: unknown[] = [];
    const statuses = [200, 401, 402, 410, 400, 503];
    let i = 0;
    const handle = withPluginCors(
      async (request) => {
        if (new URL(request.url).pathname === '/plugin/throws') throw new Error('database down');
        if (new URL(request.url).pathname === '/plugin/upstream') return fetch('data:application/json,{"ok":true}');
        return Response.json({ error: 'x' }, { status: statuses[i++]!, headers: { 'access-control-allow-credentials': 'true', 'x-own': '1' } });
      },
      { onError: (e) => errors.push(e) },
    );
    for (const status of statuses) {
      const res = await handle(post('/plugin/resize'));
      assert.equal(res.status, status);
      assert.equal(res.headers.get('access-control-allow-origin'), '*', `status ${status}`);
      assert.equal(res.headers.get('access-control-expose-headers'), 'retry-after');
      assert.equal(res.headers.get('access-control-allow-credentials'), null, 'credentials are never allowed');
      assert.equal(res.headers.get('x-own'), '1', 'the handler\'s own headers stay');
      assert.deepEqual(await res.json(), { error: 'x' });
    }
    const thrown = await handle(post('/plugin/throws'));
    assert.equal(thrown.status, 500);
    assert.equal(thrown.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(await thrown.json(), { error: 'internal_error' });
    assert.equal((errors[0] as Error).message, 'database down');
    const upstream = await handle(post('/plugin/upstream'));
    assert.equal(upstream.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(await upstream.json(), { ok: true });
  });

  test('the website-only login confirmation, the webhook and other paths are not opened', async () => {
    const seen: string[] = [];
    const handle = withPluginCors(async (request) => {
      seen.push(`${request.method} ${new URL(request.url).pathname}`);
      if (new URL(request.url).pathname === '/boom') throw new Error('not caught here');
      return Response.json({ error: 'not_found' }, { status: 404 });
    });
    for (const path of ['/plugin/login/complete', '/stripe/webhook', '/', '/pluginx/resize', '/plugin-login']) {
      for (const res of [await handle(preflight(path)), await handle(post(path))]) {
        assert.equal(res.headers.get('access-control-allow-origin'), null, path);
        assert.equal(res.headers.get('access-control-allow-headers'), null, path);
        assert.equal(res.status, 404);
      }
    }
    assert.deepEqual(seen.slice(0, 2), ['OPTIONS /plugin/login/complete', 'POST /plugin/login/complete'], 'closed routes go to the handler untouched');
    await assert.rejects(handle(post('/boom')), /not caught here/, 'a throw on a closed route is the framework\'s to answer');
  });

  test('routes as a list or a predicate; extra allowed headers and methods', async () => {
    const ok = () => new Response('ok');
    const listed = withPluginCors(ok, { routes: ['/api/resize'], allowHeaders: ['X-Plugin-Version'], methods: ['post', 'delete'] });
    const res = await listed(preflight('/api/resize'));
    assert.equal(res.status, 204);
    assert.match(res.headers.get('access-control-allow-headers')!, /x-plugin-version/);
    assert.equal(res.headers.get('access-control-allow-methods'), 'POST, DELETE');
    assert.equal((await listed(post('/plugin/resize'))).headers.get('access-control-allow-origin'), null, 'the list replaces the default');
    const predicate = withPluginCors(ok, { routes: (path) => path.startsWith('/v1/') });
    assert.equal((await predicate(post('/v1/x'))).headers.get('access-control-allow-origin'), '*');
    assert.equal((await predicate(post('/v2/x'))).headers.get('access-control-allow-origin'), null);
  });
});

describe('Node http adapter', () => {
  test('streams the body in, status, headers and cookies out; a throw is a bare 500', async () => {
    const served = await serve(async (request) => {
      const url = new URL(request.url);
      if (url.pathname === '/throw') throw new Error('boom');
      const headers = new Headers({ 'content-type': 'application/json', 'x-echo': request.headers.get('x-in') ?? '' });
      headers.append('set-cookie', 'a=1');
      headers.append('set-cookie', 'b=2');
      return new Response(JSON.stringify({ method: request.method, path: url.pathname + url.search, body: await request.text() }), { status: 201, headers });
    }, { onError: () => {} });
    try {
      const res = await fetch(`${served.url}/echo?q=1`, { method: 'POST', headers: { 'x-in': 'hi' }, body: 'x'.repeat(100_000) });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('x-echo'), 'hi');
      assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
      const body = (await res.json()) as { method: string; path: string; body: string };
      assert.deepEqual([body.method, body.path, body.body.length], ['POST', '/echo?q=1', 100_000]);
      const thrown = await fetch(`${served.url}/throw`);
      assert.equal(thrown.status, 500);
      assert.deepEqual(await thrown.json(), { error: 'internal_error' });
    } finally {
      await served.close();
    }
  });

  test('keep-alive: each request\'s signal is tied to its own answer; a client leaving mid-request aborts it', async () => {
    const signals: AbortSignal[] = [];
    let leftReported: () => void = () => {};
    const left = new Promise<void>((resolve) => (leftReported = resolve));
    const served = await serve(async (request) => {
      signals.push(request.signal);
      if (new URL(request.url).pathname === '/slow') {
        request.signal.addEventListener('abort', () => leftReported());
        await left;
        return new Response('late');
      }
      return Response.json({ n: signals.length });
    });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const { request: httpRequest, Agent } = await import('node:http');
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const get = (path: string) =>
        new Promise<{ status: number; body: string; socket: unknown }>((resolve, reject) => {
          const req = httpRequest(`${served.url}${path}`, { agent }, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode!, body, socket: req.socket }));
          });
          req.once('error', reject);
          req.end();
        });
      const serverSockets: import('node:net').Socket[] = [];
      served.server.on('connection', (s) => serverSockets.push(s));
      const before = { close: -1 };
      const sockets = new Set<unknown>();
      for (let i = 0; i < 30; i++) {
        sockets.add((await get('/ok')).socket);
        if (i === 0) before.close = serverSockets[0]!.listenerCount('close');
      }
      assert.equal(sockets.size, 1, 'the 30 requests shared one connection');
      assert.equal(serverSockets.length, 1);
      await new Promise((r) => setImmediate(r));
      assert.equal(serverSockets[0]!.listenerCount('close'), before.close, 'no close listener added per request on the kept-alive socket');
      assert.ok(signals.every((s) => !s.aborted), 'answered requests are never aborted');
      assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), [], 'no listener piles up on the kept-alive socket');
      agent.destroy();

      // A client that goes away before the answer: the handler's signal aborts.
      const gone = httpRequest(`${served.url}/slow`);
      gone.on('error', () => {});
      gone.end();
      while (signals.length < 31) await new Promise((r) => setTimeout(r, 5));
      gone.destroy();
      await left;
      assert.equal(signals[30]!.aborted, true);
    } finally {
      process.off('warning', onWarning);
      await served.close();
    }
  });

  test('the signal is made when first read: read after the client left, it is already aborted; unread, nothing is left behind', async () => {
    let arrived: () => void = () => {};
    const inHandler = new Promise<void>((resolve) => (arrived = resolve));
    let clientGone: () => void = () => {};
    const gone = new Promise<void>((resolve) => (clientGone = resolve));
    let late: AbortSignal | null = null;
    let answered: import('node:http').ServerResponse | null = null;
    const served = await serve(async (request) => {
      if (new URL(request.url).pathname === '/late') {
        arrived();
        await gone;
        late = request.signal; // first read, after the client went away
        return new Response('late');
      }
      return Response.json({ ok: true });
    });
    served.server.on('request', (_req, res) => (answered = res));
    try {
      const { request: httpRequest } = await import('node:http');
      const req = httpRequest(`${served.url}/late`);
      req.on('error', () => {});
      req.end();
      await inHandler;
      const closed = new Promise<void>((resolve) => answered!.once('close', () => resolve()));
      req.destroy();
      await closed;
      clientGone();
      while (late === null) await new Promise((r) => setTimeout(r, 5));
      assert.equal((late as AbortSignal).aborted, true, 'a signal first read after the client left is aborted');

      // An answered request whose handler never read the signal: its response keeps no listener.
      const res = await fetch(`${served.url}/ok`);
      assert.deepEqual(await res.json(), { ok: true });
      await new Promise((r) => setImmediate(r));
      assert.equal(answered!.listenerCount('close'), 0);
    } finally {
      await served.close();
    }
  });

  test('a body of declared length is written whole with its length; any other streams chunk by chunk', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const served = await serve(async (request) => {
      if (new URL(request.url).pathname === '/json') {
        const bytes = new TextEncoder().encode('{"ok":true}');
        return new Response(bytes, { headers: { 'content-type': 'application/json', 'content-length': String(bytes.byteLength) } });
      }
      // A stream whose second chunk waits: the first must reach the client before it exists.
      let step = 0;
      return new Response(new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (step++ === 0) return controller.enqueue(new TextEncoder().encode('first;'));
          await gate;
          controller.enqueue(new TextEncoder().encode('second'));
          controller.close();
        },
      }));
    });
    try {
      const whole = await fetch(`${served.url}/json`);
      assert.equal(whole.headers.get('content-length'), '11');
      assert.equal(whole.headers.get('transfer-encoding'), null);
      assert.deepEqual(await whole.json(), { ok: true });

      const streamed = await fetch(`${served.url}/stream`);
      assert.equal(streamed.headers.get('transfer-encoding'), 'chunked');
      const reader = streamed.body!.getReader();
      const first = await reader.read();
      assert.equal(new TextDecoder().decode(first.value), 'first;', 'the first chunk arrives while the second is still pending');
      release();
      let rest = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        rest += new TextDecoder().decode(value);
      }
      assert.equal(rest, 'second');
    } finally {
      release();
      await served.close();
    }
  });
});

const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

for (const dialect of DIALECTS) {
  describe(`npm run example:backend [${dialect}]`, () => {
    test('serves the example backend over http: preflight, login through its page, snapshot verified against its JWKS', () =>
      withDatabase(dialect, async ({ url }) => {
        const child = spawn(process.execPath, ['--import', TSX, 'examples/plugin-backend-server.ts'], {
          cwd: ROOT,
          env: { ...process.env, DATABASE_URL: url ?? 'memory://', PORT: '0', PLUGIN_TOKEN_SECRET: '', ENTITLEMENT_SIGNING_KEY: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stderr.on('data', (d) => (output += d));
        try {
          const base = await new Promise<string>((resolve, reject) => {
            child.stdout.on('data', (d) => {
              output += d;
              const match = /example backend: (http:\/\/\S+)/.exec(output);
              if (match) resolve(match[1]!);
            });
            child.once('exit', (code) => reject(new Error(`exited ${code}: ${output}`)));
          });
          assert.match(base, /^http:\/\/localhost:\d+$/);
          const api = base.replace('localhost', '127.0.0.1');
          const pre = await fetch(`${api}/plugin/login`, { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'POST' } });
          assert.equal(pre.status, 204);
          assert.equal(pre.headers.get('access-control-allow-origin'), '*');
          const begun = (await (await fetch(`${api}/plugin/login`, { method: 'POST' })).json()) as { readKey: string; loginUrl: string };
          assert.ok(begun.loginUrl.startsWith(`${base}/plugin-login#`));
          const page = await fetch(begun.loginUrl.replace('localhost', '127.0.0.1'));
          assert.match(await page.text(), /\/plugin\/login\/complete/);
          const refused = await fetch(`${api}/plugin/login/complete`, {
            method: 'POST', headers: { 'content-type': 'text/plain', origin: base }, body: JSON.stringify({ writeKey: new URL(begun.loginUrl).hash.slice(1) }),
          });
          assert.deepEqual([refused.status, await refused.json()], [415, { error: 'unsupported_media_type' }]);
          const json = { 'content-type': 'application/json' };
          const complete = await fetch(`${api}/plugin/login/complete`, {
            method: 'POST', headers: { ...json, origin: base }, body: JSON.stringify({ writeKey: new URL(begun.loginUrl).hash.slice(1) }),
          });
          assert.equal(complete.status, 200);
          const done = (await (await fetch(`${api}/plugin/login/poll`, { method: 'POST', headers: json, body: JSON.stringify({ readKey: begun.readKey }) })).json()) as { token: string };
          const snapshot = (await (await fetch(`${api}/plugin/entitlements`, { headers: { authorization: `Bearer ${done.token}` } })).json()) as { jwt: string };
          const jwks = await (await fetch(`${api}/plugin/jwks`)).json();
          const { sub } = JSON.parse(Buffer.from(done.token.split('.')[1]!, 'base64url').toString()) as { sub: string };
          const checked = await verifyEntitlementSnapshot(snapshot.jwt, jwks as never, { userId: sub });
          assert.equal(checked.kind, 'ok');
          assert.equal(checked.kind === 'ok' && checked.entitlement.plan, 'free');
        } finally {
          child.kill('SIGTERM');
          await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
        }
      }));
  });
}
