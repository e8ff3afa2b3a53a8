import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { buildApp } from '../../src/http/build-app.ts';
import type { EventSink } from '../../src/ingest/ingest-service.ts';
import { ingestPlugin } from '../../src/ingest/plugin.ts';
import { decodeEventMessage, encodeEvent } from '../../src/kafka/codec.ts';
import { createMetrics } from '../../src/observability/metrics.ts';

// The ingest routes over the real country database, with a sink that keeps what it is given.
// The socket peer is set with inject's remoteAddress: 8.8.8.8 is in the US, 81.2.69.160 in GB.
const BROWSER_UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15';

interface Ingest {
  app: FastifyInstance;
  events: TallyEvent[];
  logs: string[];
}

async function ingestApp(
  t: TestContext,
  env: Record<string, string> = {},
  sink?: EventSink,
): Promise<Ingest> {
  const events: TallyEvent[] = [];
  const logs: string[] = [];
  const raw = loadConfig({ TALLY_TRUSTED_PROXIES: '10.0.0.0/8', ...env }).raw;
  const logStream = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const app = await buildApp({
    logger: pino({ level: 'trace' }, logStream),
    title: 'test',
    requestTimeoutMs: 5000,
    plugins: [
      ingestPlugin({
        raw,
        sink: sink ?? {
          submit: (batch) => {
            events.push(...batch);
            return Promise.resolve(batch.map(() => 'stored' as const));
          },
        },
        metrics: createMetrics(undefined, { defaults: false }),
        projectOf: () => 'default',
        isStopping: () => false,
      }),
    ],
  });
  t.after(() => app.close());
  return { app, events, logs };
}

function post(
  app: FastifyInstance,
  url: string,
  body: unknown,
  options: { remoteAddress?: string; headers?: Record<string, string> } = {},
) {
  return app.inject({
    method: 'POST',
    url,
    remoteAddress: options.remoteAddress ?? '127.0.0.1',
    headers: {
      'content-type': url === '/v1/collect' ? 'text/plain' : 'application/json',
      ...options.headers,
    },
    payload: JSON.stringify(body),
  });
}

const pageView = { type: 'page_view', user_id: 'u1', page_url: 'https://shop.example/a' };

test('/v1/collect takes the User-Agent header for events without user_agent; an event’s own wins', async (t) => {
  const { app, events } = await ingestApp(t);
  const res = await post(app, '/v1/collect', [pageView, { ...pageView, user_agent: 'MyApp/1.0' }], {
    headers: { 'user-agent': BROWSER_UA },
  });
  assert.equal(res.statusCode, 202, res.body);
  assert.deepEqual(
    events.map((e) => e.userAgent),
    [BROWSER_UA, 'MyApp/1.0'],
  );
});

test('/v1/collect truncates a long User-Agent header to 1024 characters', async (t) => {
  const { app, events } = await ingestApp(t);
  const long = `Mozilla/5.0 ${'x'.repeat(2000)}`;
  const res = await post(app, '/v1/collect', pageView, { headers: { 'user-agent': long } });
  assert.equal(res.statusCode, 202, res.body);
  assert.equal(events[0].userAgent, long.slice(0, 1024));
});

test('/v1/events and the earlier systems’ routes do not take the User-Agent header', async (t) => {
  const { app, events } = await ingestApp(t);
  for (const url of ['/v1/events', '/ingest']) {
    const res = await post(app, url, pageView, { headers: { 'user-agent': BROWSER_UA } });
    assert.ok(res.statusCode >= 200 && res.statusCode < 300, `${url}: ${res.body}`);
  }
  assert.equal(events.length, 2);
  assert.deepEqual(
    events.map((e) => e.userAgent),
    [null, null],
  );
  const own = await post(app, '/v1/events', { ...pageView, user_agent: 'curl/8' });
  assert.equal(own.statusCode, 202);
  assert.equal(events[2].userAgent, 'curl/8');
});

test('the country of the socket peer, on every route; X-Forwarded-For only from a trusted proxy', async (t) => {
  const { app, events } = await ingestApp(t);
  const cases: [url: string, remoteAddress: string, xff: string | undefined, country: string | null][] = [
    ['/v1/collect', '81.2.69.160', undefined, 'GB'],
    ['/v1/events', '81.2.69.160', undefined, 'GB'],
    // An untrusted peer cannot claim another address.
    ['/v1/collect', '81.2.69.160', '8.8.8.8', 'GB'],
    ['/v1/events', '127.0.0.1', '8.8.8.8', null],
    // A trusted proxy (10.0.0.0/8): the right-most entry it did not add itself.
    ['/v1/collect', '10.1.2.3', '8.8.8.8', 'US'],
    ['/v1/events', '10.1.2.3', '81.2.69.160, 8.8.8.8, 10.9.9.9', 'US'],
    ['/v1/collect', '::ffff:10.1.2.3', '2001:4860:4860::8888', 'US'],
    // Private and loopback addresses have no country.
    ['/v1/collect', '10.1.2.3', '192.168.1.10', null],
    ['/v1/collect', '127.0.0.1', undefined, null],
  ];
  for (const [url, remoteAddress, xff, country] of cases) {
    const before = events.length;
    const headers: Record<string, string> = xff === undefined ? {} : { 'x-forwarded-for': xff };
    const res = await post(app, url, pageView, { remoteAddress, headers });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(events.length, before + 1);
    assert.equal(events[before].country, country, `${url} from ${remoteAddress} via ${xff}`);
  }
});

test('an explicit country wins over the address; a bad one is a 400 naming country', async (t) => {
  const { app, events } = await ingestApp(t);
  const own = await post(app, '/v1/events', [{ ...pageView, country: 'fr' }, pageView], {
    remoteAddress: '81.2.69.160',
  });
  assert.equal(own.statusCode, 202, own.body);
  assert.deepEqual(
    events.map((e) => e.country),
    ['FR', 'GB'],
  );
  const bad = await post(
    app,
    '/v1/collect',
    { ...pageView, country: 'France' },
    { remoteAddress: '8.8.8.8' },
  );
  assert.equal(bad.statusCode, 400);
  const body = bad.json<{ code: string; errors: { field: string; code: string }[] }>();
  assert.equal(body.code, 'TALLY_VALIDATION_FAILED');
  assert.deepEqual(
    body.errors.map((e) => [e.field, e.code]),
    [['country', 'TALLY_INVALID_VALUE']],
  );
  assert.equal(events.length, 2);
});

test('TALLY_GEOIP_DATABASE=off: no country from the address', async (t) => {
  const { app, events } = await ingestApp(t, { TALLY_GEOIP_DATABASE: 'off' });
  const res = await post(app, '/v1/collect', [pageView, { ...pageView, country: 'DE' }], {
    remoteAddress: '8.8.8.8',
  });
  assert.equal(res.statusCode, 202, res.body);
  assert.deepEqual(
    events.map((e) => e.country),
    [null, 'DE'],
  );
});

test('behind tally ingest the country and User-Agent are resolved before the event is encoded for Kafka', async (t) => {
  const values: string[] = [];
  const { app } = await ingestApp(
    t,
    {},
    {
      submit: (batch) => {
        for (const e of batch) values.push(encodeEvent(e).value);
        return Promise.resolve(undefined);
      },
    },
  );
  const res = await post(app, '/v1/collect', pageView, {
    remoteAddress: '10.0.0.1',
    headers: { 'x-forwarded-for': '8.8.8.8', 'user-agent': BROWSER_UA },
  });
  assert.equal(res.statusCode, 202, res.body);
  const decoded = decodeEventMessage(Buffer.from(values[0]), {
    project: 'default',
    messageTimestamp: Date.now(),
    maxFutureSkewMs: 300_000,
    maxBytes: 1 << 20,
  });
  assert.ok(decoded.ok);
  assert.equal(decoded.event.country, 'US');
  assert.equal(decoded.event.userAgent, BROWSER_UA);
  assert.ok(!values[0].includes('8.8.8.8') && !values[0].includes('10.0.0.1'), 'no address in the message');
});

test('the client address is never logged, not even when a request fails', async (t) => {
  const { app, logs } = await ingestApp(t, {}, { submit: () => Promise.reject(new Error('sink down')) });
  const res = await post(app, '/v1/collect', pageView, {
    remoteAddress: '10.77.66.55',
    headers: { 'x-forwarded-for': '8.8.4.4', 'user-agent': BROWSER_UA },
  });
  assert.equal(res.statusCode, 500);
  const text = logs.join('');
  assert.match(text, /sink down/, 'the failure is logged at all');
  assert.ok(!text.includes('10.77.66.55'), 'socket address not logged');
  assert.ok(!text.includes('8.8.4.4'), 'forwarded address not logged');
  assert.ok(!text.includes('remoteAddress'), 'no request serializer output');
});
