import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { startTestTally } from '../helpers/embedded-tally.ts';

interface Case {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  status: number;
  code: string;
  /** A field the error must name, when it is about one. */
  field?: string;
}

const ok = { type: 'page_view', user_id: 'u-ok' };
const json = { 'content-type': 'application/json' };

const cases: Case[] = [
  {
    name: 'malformed JSON',
    path: '/v1/events',
    headers: json,
    body: '{"type": "x",',
    status: 400,
    code: 'TALLY_INVALID_JSON',
  },
  {
    name: 'empty body',
    path: '/v1/events',
    headers: json,
    body: '',
    status: 400,
    code: 'TALLY_INVALID_JSON',
  },
  {
    name: 'empty array',
    path: '/v1/events',
    headers: json,
    body: '[]',
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
  },
  {
    name: 'not an object',
    path: '/v1/events',
    headers: json,
    body: '"hello"',
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: '(event)',
  },
  {
    name: 'missing user_id',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ type: 'x' }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'user_id',
  },
  {
    name: 'wrong type for user_id',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ type: 'x', user_id: 7 }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'user_id',
  },
  {
    name: 'wrong type for timestamp',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ ...ok, timestamp: true }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'timestamp',
  },
  {
    name: 'over-long type',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ type: 't'.repeat(129), user_id: 'u' }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'type',
  },
  {
    name: 'over-long page_url',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ ...ok, page_url: 'h'.repeat(2049) }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'page_url',
  },
  {
    name: 'timestamp far in the future',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ ...ok, timestamp: Date.now() + 3_600_000 }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'timestamp',
  },
  {
    name: 'NUL in a field',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ ...ok, user_id: 'a\u0000b' }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'user_id',
  },
  {
    name: 'prototype pollution key',
    path: '/v1/events',
    headers: json,
    body: '{"type":"x","user_id":"u","__proto__":{"admin":true}}',
    status: 400,
    code: 'TALLY_INVALID_JSON',
  },
  {
    name: 'too many events',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify(Array.from({ length: 10_001 }, () => ({ t: 1 }))),
    status: 413,
    code: 'TALLY_TOO_MANY_EVENTS',
  },
  {
    name: 'body over 1 MiB',
    path: '/v1/events',
    headers: json,
    body: JSON.stringify({ ...ok, properties: { x: 'a'.repeat(1_100_000) } }),
    status: 413,
    code: 'TALLY_BODY_TOO_LARGE',
  },
  {
    name: 'gzip bomb',
    path: '/v1/events',
    headers: { ...json, 'content-encoding': 'gzip' },
    body: gzipSync(Buffer.alloc(50 * 1024 * 1024, 32)),
    status: 413,
    code: 'TALLY_BODY_TOO_LARGE',
  },
  {
    name: 'corrupt gzip',
    path: '/v1/events',
    headers: { ...json, 'content-encoding': 'gzip' },
    body: 'not gzip at all',
    status: 400,
    code: 'TALLY_INVALID_JSON',
  },
  {
    name: 'unknown encoding',
    path: '/v1/events',
    headers: { ...json, 'content-encoding': 'br' },
    body: JSON.stringify(ok),
    status: 415,
    code: 'TALLY_UNSUPPORTED_ENCODING',
  },
  {
    name: 'wrong content type',
    path: '/v1/events',
    headers: { 'content-type': 'text/xml' },
    body: '<event/>',
    status: 415,
    code: 'TALLY_UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'text/plain outside /v1/collect',
    path: '/v1/events',
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify(ok),
    status: 415,
    code: 'TALLY_UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'invalid UTF-8',
    path: '/v1/events',
    headers: json,
    body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    status: 400,
    code: 'TALLY_INVALID_JSON',
  },
  {
    name: 'seed 000 shape without activity_type',
    path: '/activity',
    headers: json,
    body: JSON.stringify({ user_id: '1', metadata: {} }),
    status: 400,
    code: 'TALLY_VALIDATION_FAILED',
    field: 'type',
  },
  // Query parameters.
  {
    name: 'unknown metric',
    method: 'GET',
    path: '/v1/stats/timeseries?metric=revenue',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'metric',
  },
  {
    name: 'unknown interval',
    method: 'GET',
    path: '/v1/stats/timeseries?interval=week',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'interval',
  },
  {
    name: 'unknown time zone',
    method: 'GET',
    path: '/v1/stats/timeseries?tz=Mars/Olympus',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'tz',
  },
  {
    name: 'unknown parameter',
    method: 'GET',
    path: '/v1/stats/summary?form=2024-01-01T00:00:00Z',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'form',
  },
  {
    name: 'unparseable from',
    method: 'GET',
    path: '/v1/stats/summary?from=last-week',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'from',
  },
  {
    name: 'from after to',
    method: 'GET',
    path: '/v1/stats/summary?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'from',
  },
  {
    name: 'too many minute buckets',
    method: 'GET',
    path: '/v1/stats/timeseries?interval=minute&from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'interval',
  },
  {
    name: 'limit out of range',
    method: 'GET',
    path: '/v1/stats/top-pages?limit=0',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'limit',
  },
  {
    name: 'limit not a number',
    method: 'GET',
    path: '/v1/users/u/events?limit=ten',
    status: 400,
    code: 'TALLY_INVALID_QUERY',
    field: 'limit',
  },
  {
    // unique_users and visitors follow one rule: event_type is answered, page_url is not.
    name: 'page_url unsupported for unique users',
    method: 'GET',
    path: '/v1/stats/timeseries?metric=unique_users&page_url=https%3A%2F%2Fx.com%2F',
    status: 400,
    code: 'TALLY_UNSUPPORTED_FILTER',
    field: 'page_url',
  },
  {
    name: 'page_url unsupported for visitors',
    method: 'GET',
    path: '/v1/stats/timeseries?metric=visitors&page_url=https%3A%2F%2Fx.com%2F',
    status: 400,
    code: 'TALLY_UNSUPPORTED_FILTER',
    field: 'page_url',
  },
  { name: 'unknown route', method: 'GET', path: '/v2/nothing', status: 404, code: 'TALLY_NOT_FOUND' },
];

test('bad input gets the documented status and error code, and stores nothing', async (t) => {
  const tally = await startTestTally(t);
  for (const c of cases) {
    const res = await fetch(`${tally.url}${c.path}`, {
      method: c.method ?? 'POST',
      headers: c.headers,
      body: c.body,
    });
    const body = (await res.json()) as {
      code: string;
      message: string;
      statusCode: number;
      errors?: { field: string }[];
    };
    assert.equal(res.status, c.status, `${c.name}: status (${JSON.stringify(body).slice(0, 200)})`);
    assert.equal(body.code, c.code, `${c.name}: code`);
    assert.equal(body.statusCode, c.status, `${c.name}: statusCode in body`);
    assert.ok(body.message.length > 0, `${c.name}: has a message`);
    if (c.field) {
      const fields = (body.errors ?? []).map((e) => e.field);
      assert.ok(
        fields.includes(c.field),
        `${c.name}: names field ${c.field} (got ${fields.join(', ')}: ${body.message})`,
      );
    }
  }
  const { rows } = await tally.database.pool.query<{ n: number }>(
    'SELECT count(*)::int8 AS n FROM tally.event_ids',
  );
  assert.equal(rows[0].n, 0, 'nothing from a rejected request was stored');
});

test('a partly invalid request stores the valid events and reports the others by index', async (t) => {
  const tally = await startTestTally(t);
  const ndjson = [
    JSON.stringify({ ...ok, event_id: 'good-1' }),
    '{broken',
    JSON.stringify({ type: 'x' }),
    JSON.stringify({ ...ok, event_id: 'good-2' }),
  ].join('\n');
  const res = await fetch(`${tally.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson' },
    body: ndjson,
  });
  const body = (await res.json()) as {
    accepted: number;
    event_ids: string[];
    rejected: { index: number; field: string; code: string }[];
  };
  assert.equal(res.status, 202);
  assert.equal(body.accepted, 2);
  assert.deepEqual(body.event_ids, ['good-1', 'good-2']);
  assert.deepEqual(
    body.rejected.map((r) => [r.index, r.field, r.code]),
    [
      [1, '(line)', 'TALLY_INVALID_JSON'],
      [2, 'user_id', 'TALLY_FIELD_REQUIRED'],
    ],
  );
  const { rows } = await tally.database.pool.query<{ event_id: string }>(
    'SELECT event_id FROM tally.events ORDER BY event_id',
  );
  assert.deepEqual(
    rows.map((r) => r.event_id),
    ['good-1', 'good-2'],
  );
});

test('gzip-encoded NDJSON within the limits is accepted', async (t) => {
  const tally = await startTestTally(t);
  const lines = Array.from({ length: 500 }, (_, i) => JSON.stringify({ ...ok, event_id: `gz-${i}` })).join(
    '\n',
  );
  const res = await fetch(`${tally.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
    body: gzipSync(lines),
  });
  assert.equal(res.status, 202);
  assert.equal(((await res.json()) as { accepted: number }).accepted, 500);
});
