import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { startTestTally } from '../helpers/embedded-tally.ts';

interface Raw {
  status: number;
  type: string;
  length: string | undefined;
  body: Buffer;
}

/** One request over node:http, so the body is the bytes on the wire (and a GET may carry JSON). */
function send(base: string, method: string, path: string, body?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> =
      body === undefined
        ? {}
        : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const req = request(new URL(path, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'] ?? '',
          length: res.headers['content-length'],
          body: Buffer.concat(chunks),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const event = (id: string) =>
  JSON.stringify({ event_id: id, type: 'page_view', user_id: 'u-1', page_url: 'https://example.com/' });

test('every route’s JSON answer, success or error, ends with one newline', async (t) => {
  const tally = await startTestTally(t);
  const calls: [method: string, path: string, status: number, body?: string][] = [
    ['GET', '/health', 200],
    ['GET', '/ready', 200],
    ['GET', '/v1/pipeline', 200],
    ['GET', '/docs/json', 200],
    ['GET', '/docs/openapi.json', 200],
    ['POST', '/v1/events', 202, event('nl-1')],
    ['POST', '/v1/events', 400, '{"type": "click"}'],
    ['POST', '/v1/events', 400, '{not json'],
    ['POST', '/activity', 200, JSON.stringify({ user_id: 'u-2', activity_type: 'page_view' })],
    ['POST', '/ingest', 200, JSON.stringify({ event_id: 'nl-3', user_id: 'u-3', event_type: 'click' })],
    ['GET', '/analytics/events', 200, JSON.stringify({ user_id: 'u-3', page_url: 'https://example.com' })],
    ['GET', '/analytics/events?user_id=u-3', 400],
    ['GET', '/v1/stats/summary?from=2026-12-01&to=2026-12-02', 200],
    ['GET', '/v1/stats/timeseries?from=2026-12-01&to=2026-12-02&tz=Asia/Kolkata', 200],
    ['GET', '/v1/stats/top-pages', 200],
    ['GET', '/v1/stats/event-types', 200],
    ['GET', '/v1/users/u-1/events', 200],
    ['GET', '/v1/stats/summary?from=2026-02-30', 400],
    ['GET', '/v1/stats/summary?bogus=1', 400],
    ['GET', '/no/such/route', 404],
  ];
  for (const [method, path, status, body] of calls) {
    const res = await send(tally.url, method, path, body);
    const where = `${method} ${path}`;
    assert.equal(res.status, status, `${where}: ${res.body.toString()}`);
    assert.match(res.type, /^application\/json/, where);
    const text = res.body.toString('utf8');
    assert.ok(text.endsWith('}\n'), `${where} should end with "}\\n": ${JSON.stringify(text.slice(-20))}`);
    assert.equal(res.length, String(res.body.length), where);
    JSON.parse(text);
  }

  // Not JSON: the Prometheus text (which ends its last line itself) gets no extra newline.
  const metrics = await send(tally.url, 'GET', '/metrics');
  assert.match(metrics.type, /^text\/plain/);
  assert.doesNotMatch(metrics.body.toString(), /\n\n$/);
});
