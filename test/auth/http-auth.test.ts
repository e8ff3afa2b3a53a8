import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pino } from 'pino';
import { generateKey, hashKey, type Scope, type StoredKey } from '../../src/auth/api-keys.ts';
import { Metadata } from '@grpc/grpc-js';
import { authorize } from '../../src/auth/authorize.ts';
import { grpcProjectOf } from '../../src/auth/grpc-project.ts';
import { KeySet } from '../../src/auth/key-set.ts';
import { assertSafeBinding, projectOf } from '../../src/auth/http-auth.ts';
import { buildApp } from '../../src/http/build-app.ts';
import { DASHBOARD_SECURITY_HEADERS } from '../../src/http/security-headers.ts';

const logger = pino({ level: 'silent' });

/** A key set backed by an in-memory list instead of PostgreSQL (the store is tested elsewhere). */
function memoryKeys(keys: StoredKey[]): KeySet {
  return new KeySet({ load: () => Promise.resolve([...keys]), logger, refreshMs: 60_000 });
}

function stored(id: number, key: string, project: string, scope: Scope, revoked = false): StoredKey {
  return { id, project, scope, hashHex: hashKey(key).toString('hex'), revoked };
}

/** An app with the real auth layer and stand-in routes that echo the request's project. */
async function appWith(t: TestContext, keys: KeySet, opts: { rateLimit?: number; timeoutMs?: number } = {}) {
  await keys.start();
  const app = await buildApp({
    logger,
    title: 'test',
    requestTimeoutMs: opts.timeoutMs ?? 30_000,
    auth: { keys, rateLimitPerSec: opts.rateLimit ?? 1000 },
    plugins: [
      async (a: FastifyInstance) => {
        a.post('/v1/events', (req) => ({ project: projectOf(req) }));
        a.post('/v1/collect', (req) => ({ project: projectOf(req) }));
        a.get('/v1/stats/summary', (req) => ({ project: projectOf(req) }));
        a.get('/v1/stream', (req) => ({ project: projectOf(req) }));
        a.get('/health', () => ({ status: 'healthy' }));
        a.get('/metrics', () => 'm 1\n');
        a.get('/dashboard/:name', () => 'body{}');
        a.get('/', { helmet: DASHBOARD_SECURITY_HEADERS }, (_req, reply) =>
          reply.type('text/html').send('<!doctype html><title>dashboard</title>'),
        );
      },
    ],
  });
  t.after(async () => {
    keys.stop();
    await app.close();
  });
  return app;
}

test('without keys every route is open and requests belong to project "default"', async (t) => {
  const app = await appWith(t, memoryKeys([]));
  const res = await app.inject({ method: 'POST', url: '/v1/events', payload: {} });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.json(), { project: 'default' });
  assert.equal((await app.inject('/v1/stats/summary')).json<{ project: string }>().project, 'default');
});

test('with keys: 401 without or with a bad key, 403 with the wrong scope, the key decides the project', async (t) => {
  const w = generateKey();
  const r = generateKey();
  const revoked = generateKey();
  const other = generateKey();
  const app = await appWith(
    t,
    memoryKeys([
      stored(1, w, 'shop', 'write'),
      stored(2, r, 'shop', 'read'),
      stored(3, revoked, 'shop', 'write', true),
      stored(4, other, 'blog', 'read'),
    ]),
  );
  const post = (headers: Record<string, string>, url = '/v1/events') =>
    app.inject({ method: 'POST', url, headers, payload: {} });

  const none = await post({});
  assert.equal(none.statusCode, 401);
  assert.equal(none.json<{ code: string }>().code, 'TALLY_UNAUTHORIZED');
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  assert.equal((await post({ authorization: `Bearer ${generateKey()}` })).statusCode, 401);
  assert.equal((await post({ authorization: 'Bearer not-a-key' })).statusCode, 401);
  assert.equal((await post({ 'x-api-key': revoked })).statusCode, 401, 'revoked key');

  const wrong = await post({ authorization: `Bearer ${r}` });
  assert.equal(wrong.statusCode, 403);
  assert.equal(wrong.json<{ code: string }>().code, 'TALLY_FORBIDDEN');
  const readWithWrite = await app.inject({ url: '/v1/stats/summary', headers: { 'x-api-key': w } });
  assert.equal(readWithWrite.statusCode, 403);

  assert.deepEqual((await post({ authorization: `bearer ${w}` })).json(), { project: 'shop' });
  assert.deepEqual((await post({ 'x-api-key': w })).json(), { project: 'shop' });
  const read = await app.inject({ url: '/v1/stats/summary', headers: { authorization: `Bearer ${other}` } });
  assert.deepEqual(read.json(), { project: 'blog' });
});

/** An app with the admin routes' shapes (stand-ins echoing the key), beside a read route of the same path. */
async function adminApp(t: TestContext, keys: KeySet) {
  await keys.start();
  const app = await buildApp({
    logger,
    title: 'test',
    requestTimeoutMs: 30_000,
    auth: { keys, rateLimitPerSec: 1000 },
    plugins: [
      async (a: FastifyInstance) => {
        const echo = (req: FastifyRequest) => ({ project: projectOf(req), scope: req.tallyAuth?.scope });
        a.delete('/v1/users/:user_id', echo);
        a.get('/v1/users/:user_id/export', echo);
        a.get('/v1/users/:user_id/events', echo);
        a.get('/v1/admin/audit', echo);
        a.get('/v1/stats/summary', echo);
        a.post('/v1/events', echo);
      },
    ],
  });
  t.after(async () => {
    keys.stop();
    await app.close();
  });
  return app;
}

const ADMIN_CALLS = [
  { method: 'DELETE', url: '/v1/users/u-1' },
  { method: 'GET', url: '/v1/users/u-1/export' },
  { method: 'GET', url: '/v1/admin/audit' },
] as const;

test('admin routes: 403 while no key exists, though everything else is open', async (t) => {
  const app = await adminApp(t, memoryKeys([]));
  for (const call of ADMIN_CALLS) {
    const res = await app.inject(call);
    assert.equal(res.statusCode, 403, `${call.method} ${call.url}`);
    const body = res.json<{ code: string; message: string }>();
    assert.equal(body.code, 'TALLY_FORBIDDEN');
    assert.match(body.message, /no API key exists.*--scope admin/);
  }
  assert.equal((await app.inject('/v1/users/u-1/events')).statusCode, 200, 'reading a user stays open');
  assert.equal((await app.inject('/v1/stats/summary')).statusCode, 200);
});

test('admin routes need an admin key, and an admin key opens nothing else (exact scope)', async (t) => {
  const r = generateKey();
  const w = generateKey();
  const a = generateKey();
  const app = await adminApp(
    t,
    memoryKeys([stored(1, r, 'shop', 'read'), stored(2, w, 'shop', 'write'), stored(3, a, 'shop', 'admin')]),
  );
  for (const call of ADMIN_CALLS) {
    for (const key of [r, w]) {
      const res = await app.inject({ ...call, headers: { authorization: `Bearer ${key}` } });
      assert.equal(
        res.statusCode,
        403,
        `${call.method} ${call.url} with a ${key === r ? 'read' : 'write'} key`,
      );
      assert.match(res.json<{ message: string }>().message, /an admin key is needed/);
    }
    assert.equal((await app.inject(call)).statusCode, 401, 'no key');
    const ok = await app.inject({ ...call, headers: { 'x-api-key': a } });
    assert.equal(ok.statusCode, 200, `${call.method} ${call.url} with the admin key`);
    assert.deepEqual(ok.json(), { project: 'shop', scope: 'admin' });
  }
  const withAdmin = { headers: { authorization: `Bearer ${a}` } };
  assert.equal((await app.inject({ url: '/v1/users/u-1/events', ...withAdmin })).statusCode, 403);
  assert.equal((await app.inject({ url: '/v1/stats/summary', ...withAdmin })).statusCode, 403);
  assert.equal(
    (await app.inject({ method: 'POST', url: '/v1/events', ...withAdmin, payload: {} })).statusCode,
    403,
  );
  assert.equal(
    (await app.inject({ url: '/v1/users/u-1/events', headers: { authorization: `Bearer ${r}` } })).statusCode,
    200,
    'GET /v1/users/:user_id/events is still a read',
  );
});

test('?key= works only on the beacon route, and only with a write key', async (t) => {
  const w = generateKey();
  const r = generateKey();
  const app = await appWith(t, memoryKeys([stored(1, w, 'shop', 'write'), stored(2, r, 'shop', 'read')]));
  const collect = await app.inject({ method: 'POST', url: `/v1/collect?key=${w}`, payload: {} });
  assert.equal(collect.statusCode, 200);
  assert.equal(collect.json<{ project: string }>().project, 'shop');
  assert.equal(
    (await app.inject({ method: 'POST', url: `/v1/collect?key=${r}`, payload: {} })).statusCode,
    403,
    'a read key cannot write beacons',
  );
  assert.equal(
    (await app.inject(`/v1/stream?key=${r}`)).statusCode,
    401,
    'the stream takes its key in a header',
  );
  assert.equal(
    (await app.inject({ url: '/v1/stream', headers: { authorization: `Bearer ${r}` } })).statusCode,
    200,
  );
  assert.equal(
    (await app.inject({ method: 'POST', url: `/v1/events?key=${w}`, payload: {} })).statusCode,
    401,
    'query-string keys are not accepted on header-capable routes',
  );
  assert.equal((await app.inject(`/v1/stats/summary?key=${r}`)).statusCode, 401);
});

test('probes, metrics, docs and the dashboard page stay open; the dashboard gets security headers', async (t) => {
  const app = await appWith(t, memoryKeys([stored(1, generateKey(), 'shop', 'write')]));
  assert.equal((await app.inject('/health')).statusCode, 200);
  assert.equal((await app.inject('/metrics')).statusCode, 200);
  assert.equal((await app.inject('/docs/json')).statusCode, 200);
  assert.equal((await app.inject('/dashboard/dashboard.css')).statusCode, 200);
  assert.equal((await app.inject('/nope')).statusCode, 401, 'unknown routes are not an open door');
  const page = await app.inject('/');
  assert.equal(page.statusCode, 200);
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  assert.equal(page.headers['referrer-policy'], 'no-referrer');
  // API answers are not burdened with page headers.
  assert.equal((await app.inject('/health')).headers['content-security-policy'], undefined);
});

test('rate limit per key: 429 with Retry-After; another key and the probes are unaffected', async (t) => {
  const a = generateKey();
  const b = generateKey();
  const app = await appWith(t, memoryKeys([stored(1, a, 'shop', 'read'), stored(2, b, 'shop', 'read')]), {
    rateLimit: 5,
  });
  const get = (key: string, url = '/v1/stats/summary') => app.inject({ url, headers: { 'x-api-key': key } });
  // Fire bursts until the limiter trips (no timing assumption: a slow machine just needs more bursts).
  let limited;
  const deadline = Date.now() + 30_000;
  while (!limited && Date.now() < deadline) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => get(a)));
    limited = answers.find((res) => res.statusCode === 429);
  }
  assert.ok(limited, 'a burst of 20 requests at 5 req/s must be limited');
  assert.equal(limited.json<{ code: string }>().code, 'TALLY_RATE_LIMITED');
  assert.match(String(limited.headers['retry-after']), /^\d+$/);
  assert.equal((await get(b)).statusCode, 200, 'limits are per key');
  const probes = await Promise.all(Array.from({ length: 20 }, () => app.inject('/health')));
  assert.ok(probes.every((res) => res.statusCode === 200));
});

test('a slow-loris client is cut off after the request timeout', async (t) => {
  const app = await appWith(t, memoryKeys([]), { timeoutMs: 1000 });
  const url = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
  const socket = connect(Number(url.port), '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {});
  socket.write(
    'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n',
  );
  // Trickle one byte at a time, far too slowly to ever finish the 100 kB body.
  let sent = 0;
  const drip = setInterval(() => {
    if (!socket.destroyed) {
      socket.write(' ');
      sent++;
    }
  }, 100);
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      closed.then(() => 'closed' as const),
      new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), 60_000))),
    ]);
    assert.equal(outcome, 'closed');
    assert.ok(sent < 100_000, 'the connection was closed before the body was complete');
  } finally {
    clearInterval(drip);
    clearTimeout(timer);
    socket.destroy();
  }
});

test('binding: no keys means loopback only, unless explicitly allowed', async () => {
  const none = memoryKeys([]);
  await none.refresh();
  for (const host of ['127.0.0.1', 'localhost', '::1'])
    assert.doesNotThrow(() => assertSafeBinding(host, none, false));
  for (const host of ['0.0.0.0', '::', '10.0.0.5']) {
    assert.throws(() => assertSafeBinding(host, none, false), /refusing to listen on/);
    assert.doesNotThrow(() => assertSafeBinding(host, none, true));
  }
  const some = memoryKeys([stored(1, generateKey(), 'shop', 'write', true)]);
  await some.refresh();
  assert.doesNotThrow(
    () => assertSafeBinding('0.0.0.0', some, false),
    'a revoked key still means auth is on',
  );
  assert.equal(some.authRequired, true);
});

test('authorize(): the transport-independent decision (for gRPC metadata as well as HTTP)', async () => {
  const w = generateKey();
  const open = memoryKeys([]);
  await open.refresh();
  assert.deepEqual(authorize(open, undefined, 'read'), { ok: true, project: 'default', keyId: null });
  assert.equal(authorize(open, undefined, 'admin').ok, false, 'admin is never open');
  const keys = memoryKeys([stored(7, w, 'shop', 'write')]);
  await keys.refresh();
  assert.deepEqual(authorize(keys, w, 'write'), { ok: true, project: 'shop', keyId: 7 });
  assert.equal(authorize(keys, w, 'read').ok, false);
  assert.deepEqual(
    [
      authorize(keys, undefined, 'read'),
      authorize(keys, generateKey(), 'write'),
      authorize(keys, w, 'read'),
    ].map((r) => (r.ok ? 'ok' : r.code)),
    ['TALLY_UNAUTHORIZED', 'TALLY_UNAUTHORIZED', 'TALLY_FORBIDDEN'],
  );
});

test('gRPC: the read key in call metadata decides the project; errors are TALLY_UNAUTHORIZED/FORBIDDEN', async () => {
  const r = generateKey();
  const w = generateKey();
  const keys = memoryKeys([stored(1, r, 'shop', 'read'), stored(2, w, 'shop', 'write')]);
  await keys.refresh();
  const projectOfCall = grpcProjectOf(keys);
  const md = (name: string, value: string) => {
    const m = new Metadata();
    m.set(name, value);
    return m;
  };
  assert.equal(projectOfCall(md('authorization', `Bearer ${r}`)), 'shop');
  assert.equal(projectOfCall(md('x-api-key', r)), 'shop');
  assert.throws(() => projectOfCall(new Metadata()), { code: 'TALLY_UNAUTHORIZED' });
  assert.throws(() => projectOfCall(md('x-api-key', w)), { code: 'TALLY_FORBIDDEN' });
  const open = memoryKeys([]);
  await open.refresh();
  assert.equal(grpcProjectOf(open)(new Metadata()), 'default');
});
