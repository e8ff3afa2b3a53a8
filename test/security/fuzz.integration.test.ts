import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { startTestTally } from '../helpers/embedded-tally.ts';
import { dimensionish, filterParams, hostileString, huge, MiB } from './hostile-inputs.ts';

/**
 * Property: whatever arrives at an ingest or query endpoint — malformed, hostile, huge,
 * compressed to explode — Tally answers below 500, keeps running, stores exactly the events
 * it acknowledged (all valid), and its memory stays bounded.
 */

const INGEST_PATHS = ['/v1/events', '/activity', '/ingest', '/v1/collect'];
const QUERY_PATHS = [
  '/v1/stats/summary',
  '/v1/stats/timeseries',
  '/v1/stats/top-pages',
  '/v1/stats/event-types',
  '/v1/stats/breakdown',
  '/analytics/events',
];
const TIME_BUDGET_MS = 45_000;
const MIN_REQUESTS = 1500;
const RSS_GROWTH_LIMIT = 512 * 1024 * 1024;

// 64 MiB of zeros gzip to ~64 KiB: under the body limit, far over the decompressed limit.
const gzipBomb = gzipSync(Buffer.alloc(64 * MiB));
const deepArray = '['.repeat(100_000) + ']'.repeat(100_000);
const deepObject = '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000);

const hostileKey = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '',
  '\u0000',
  "'; --",
  'user_id',
  'type',
);
const scalar = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(-1, 0, 1e300, -1e300, Number.MAX_SAFE_INTEGER, 8.64e15 + 1),
);
const { value: hostileValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(hostileKey, fc.string({ maxLength: 10 })), tie('value'), { maxKeys: 4 }),
  ),
}));
const timestampish = fc.oneof(
  fc
    .date({ noInvalidDate: false })
    .map((d) => (Number.isNaN(d.getTime()) ? 'Invalid Date' : d.toISOString())),
  fc.integer({ min: -1e15, max: 1e16 }),
  hostileString,
  fc.constantFrom('2024-02-30T00:00:00Z', '9999-12-31T23:59:59Z', '0000-01-01T00:00:00Z', '1970-01-01'),
);
/** Mostly event-shaped objects with hostile values, sometimes valid ones. */
const eventLike = fc.record(
  {
    event_id: fc.oneof(fc.uuid(), hostileString),
    type: fc.oneof(fc.constantFrom('page_view', 'click', 'user.login'), hostileString),
    event_type: fc.oneof(fc.constantFrom('page_view', 'click'), hostileString),
    activity_type: fc.constantFrom('page_view', 'login'),
    user_id: fc.oneof(fc.constantFrom('u-1', 'u-2', 'u-3'), hostileString, fc.integer()),
    timestamp: timestampish,
    time_stamp: timestampish,
    sent_at: timestampish,
    page_url: fc.oneof(fc.webUrl(), hostileString),
    referrer: hostileString,
    session_id: hostileString,
    service: hostileString,
    properties: hostileValue,
    metadata: fc.record({ page_url: fc.oneof(fc.webUrl(), hostileString), referrer: hostileString }),
  },
  { requiredKeys: [] },
);

/** A valid event with at most one hostile field: the inputs that are most likely to slip through. */
const nearlyValid = fc
  .tuple(
    fc.record({
      event_id: fc.uuid(),
      type: fc.constantFrom('page_view', 'click', 'user.login', "o'brien; --", 'ü\u202e'),
      user_id: fc.constantFrom('u-1', 'u-2', "' OR 1=1 --", '🙂'),
      page_url: fc.webUrl(),
      timestamp: fc.integer({ min: Date.now() - 30 * 86_400_000, max: Date.now() }),
      properties: fc.dictionary(
        fc.string({ maxLength: 8 }),
        scalar.filter((v) => typeof v !== 'string' || v.length < 100),
        { maxKeys: 3 },
      ),
    }),
    fc.option(
      fc.tuple(
        fc.constantFrom(
          'event_id',
          'type',
          'user_id',
          'page_url',
          'timestamp',
          'sent_at',
          'properties',
          'session_id',
          'referrer',
        ),
        hostileValue,
      ),
    ),
  )
  .map(([event, override]) => (override ? { ...event, [override[0]]: override[1] } : event));

/** JSON text with hostile own keys (JSON.stringify cannot produce a literal "__proto__" key). */
const protoText = fc
  .tuple(fc.constantFrom('__proto__', 'constructor'), hostileValue)
  .map(
    ([key, value]) =>
      `{"type":"click","user_id":"u-1","${key}":${JSON.stringify(value) ?? 'null'},"properties":{"${key}":{"prototype":{"polluted":true}}}}`,
  );

interface FuzzRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/x-ndjson',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  'application/json; charset=latin1',
  '',
);
const text = (s: string) => new TextEncoder().encode(s);

const ingestBody: fc.Arbitrary<{ body: Uint8Array; encoding?: string; ndjson?: boolean }> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .array(nearlyValid, { minLength: 1, maxLength: 20 })
      .map((a) => ({ body: text(JSON.stringify(a)) })),
  },
  { weight: 2, arbitrary: nearlyValid.map((e) => ({ body: text(JSON.stringify(e)) })) },
  fc
    .array(
      nearlyValid.map((e) => JSON.stringify(e)),
      { minLength: 1, maxLength: 20 },
    )
    .map((lines) => ({ body: text(lines.join('\n')), ndjson: true })),
  eventLike.map((e) => ({ body: text(JSON.stringify(e)) })),
  fc.array(eventLike, { maxLength: 20 }).map((a) => ({ body: text(JSON.stringify(a)) })),
  fc
    .array(
      fc.oneof(
        eventLike.map((e) => JSON.stringify(e)),
        hostileString,
      ),
      { maxLength: 20 },
    )
    .map((lines) => ({ body: text(lines.join('\n')), ndjson: true })),
  hostileValue.map((v) => ({ body: text(JSON.stringify(v) ?? '') })),
  protoText.map((s) => ({ body: text(s) })),
  fc.uint8Array({ maxLength: 300 }).map((body) => ({ body })),
  fc
    .constantFrom([0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xff, 0xfe], [0xf4, 0x90, 0x80, 0x80])
    .map((bad) => ({
      body: Buffer.concat([Buffer.from('{"type":"x","user_id":"'), Buffer.from(bad), Buffer.from('"}')]),
    })),
  fc.constantFrom(
    { body: text(huge.overBodyLimit) },
    { body: gzipBomb, encoding: 'gzip' },
    { body: text(deepArray) },
    { body: text(deepObject) },
    { body: text('{"type":"x","user_id":"u\\u0000"}') },
    { body: gzipSync(text('{"type":"x","user_id":"u')).subarray(0, 20), encoding: 'gzip' },
    { body: text('{"type":"page_view","user_id":"u-1"}'), encoding: 'br' },
    { body: text('{"type":"page_view","user_id":"u-1"}'), encoding: 'gzip' },
  ),
  eventLike.map((e) => ({ body: gzipSync(text(JSON.stringify(e))), encoding: 'gzip' })),
);

const ingestRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(fc.constantFrom(...INGEST_PATHS), ingestBody, contentType, fc.boolean())
  .map(([path, b, type, useDeclaredType]) => ({
    method: 'POST' as const,
    path,
    headers: {
      ...(useDeclaredType || b.ndjson
        ? { 'content-type': b.ndjson ? 'application/x-ndjson' : 'application/json' }
        : type
          ? { 'content-type': type }
          : {}),
      ...(b.encoding ? { 'content-encoding': b.encoding } : {}),
    },
    body: b.body,
  }));

const queryValue = fc.oneof(
  hostileString.filter((s) => s.length < 5000),
  fc.constantFrom('minute', 'hour', 'day', 'events', 'page_views', 'unique_users', 'UTC', 'Asia/Kolkata'),
  fc.integer().map(String),
  timestampish.map(String).filter((s) => s.length < 5000),
);

const queryRequest: fc.Arbitrary<FuzzRequest> = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(...QUERY_PATHS),
      hostileString
        .filter((s) => s.length < 2000)
        .map((u) => `/v1/users/${encodeURIComponent(u.toWellFormed())}/events`),
    ),
    fc.dictionary(
      fc.constantFrom(
        'from',
        'to',
        'metric',
        'interval',
        'tz',
        'limit',
        'event_type',
        'page_url',
        'user_id',
        'x',
        'dimension',
        'metrics',
        'sort',
        'bots',
        'page',
      ),
      fc.oneof(
        queryValue,
        dimensionish,
        fc.constantFrom('visitors,visits', 'bounce_rate', 'visits:asc', 'include', 'only', '0', '-1', ''),
      ),
      { maxKeys: 5 },
    ),
    filterParams,
  )
  .map(([path, params, filters]) => {
    const qs = [...Object.entries(params), ...filters.map((f) => ['filter', f] as const)]
      .map(([k, v]) => `${k}=${encodeURIComponent(v.toWellFormed())}`)
      .join('&');
    return { method: 'GET' as const, path: qs ? `${path}?${qs}` : path, headers: {} };
  });

interface Accepted {
  event_ids?: string[];
}

test(
  'fuzz: hostile payloads never cause a 5xx, a crash, invalid rows or unbounded memory',
  { timeout: 180_000 },
  async (t) => {
    const tally = await startTestTally(t, { TALLY_RATE_LIMIT: '1000000' });
    const store = new ApiKeyStore(tally.database.pool);
    const writeKey = (await createApiKey(store, 'fuzz', 'write')).key;
    const readKey = (await createApiKey(store, 'fuzz', 'read')).key;
    await tally.keys.refresh();

    const accepted = new Set<string>();
    const inFlight = new Set<Promise<unknown>>();
    const statuses = new Map<number, number>();
    let requests = 0;
    let peakRss = 0;
    const baseRss = process.memoryUsage().rss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    t.after(() => clearInterval(sampler));

    const send = async (r: FuzzRequest, auth: 'right' | 'wrong' | 'none' | 'garbage') => {
      const key = r.method === 'POST' ? writeKey : readKey;
      const other = r.method === 'POST' ? readKey : writeKey;
      const headers: Record<string, string> = { ...r.headers };
      if (auth === 'right') headers['x-api-key'] = key;
      if (auth === 'wrong') headers.authorization = `Bearer ${other}`;
      if (auth === 'garbage') headers.authorization = `Bearer ${"'; DROP TABLE tally.api_keys; --"}`;
      const res = await fetch(`${tally.url}${r.path}`, { method: r.method, headers, body: r.body });
      const payload = await res.text();
      requests++;
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(
        res.status < 500,
        `${r.method} ${r.path.slice(0, 200)} → ${res.status}: ${payload.slice(0, 300)}`,
      );
      // Without a valid key of the right scope nothing succeeds (401/403, or an earlier 4xx like 414).
      if (auth !== 'right') assert.ok(res.status >= 400, `${auth} key got ${res.status}`);
      if (r.method === 'POST' && (res.status === 200 || res.status === 202)) {
        for (const id of (JSON.parse(payload) as Accepted).event_ids ?? []) accepted.add(id);
      }
    };

    // Mostly the right key (to reach the handlers), sometimes none, the wrong scope or garbage.
    const auth = fc.oneof(
      { weight: 8, arbitrary: fc.constant('right' as const) },
      fc.constantFrom('wrong' as const, 'none' as const, 'garbage' as const),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.tuple(
            fc.oneof({ weight: 3, arbitrary: ingestRequest }, { weight: 1, arbitrary: queryRequest }),
            auth,
          ),
          {
            minLength: 8,
            maxLength: 8,
          },
        ),
        async (batch) => {
          const sending = Promise.all(batch.map(([r, a]) => send(r, a)));
          inFlight.add(sending);
          try {
            await sending;
          } finally {
            inFlight.delete(sending);
          }
        },
      ),
      {
        numRuns: 100_000,
        interruptAfterTimeLimit: TIME_BUDGET_MS,
        seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31),
        // Counterexamples hold megabyte strings: report a readable excerpt, not all of it.
        reporter: (details) => {
          if (details.failed) {
            const cause = details.errorInstance instanceof Error ? details.errorInstance.message : '';
            throw new Error(`${cause.slice(0, 2000)}\n${fc.defaultReportMessage(details)?.slice(0, 2000)}`);
          }
        },
      },
    );
    // interruptAfterTimeLimit stops waiting for the last batch but does not cancel it: its
    // requests may still be acknowledged, so wait for them before reading what was stored.
    await Promise.all(inFlight);
    clearInterval(sampler);
    process.stderr.write(
      `fuzz: ${requests} requests, ${accepted.size} events accepted, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ` +
        `RSS ${Math.round(baseRss / MiB)} → peak ${Math.round(peakRss / MiB)} MiB\n`,
    );
    assert.ok(requests >= MIN_REQUESTS, `only ${requests} requests in the time budget`);
    assert.ok(
      peakRss - baseRss < RSS_GROWTH_LIMIT,
      `RSS grew by ${Math.round((peakRss - baseRss) / MiB)} MiB`,
    );

    // Still alive and well.
    assert.equal((await fetch(`${tally.url}/health`)).status, 200);
    assert.equal((await fetch(`${tally.url}/ready`)).status, 200);

    // Exactly the acknowledged events are stored, and every stored row is a valid event.
    const { rows } = await tally.database.pool.query<{
      project: string;
      event_id: string;
      type: string;
      user_id: string;
      page_url: string | null;
      properties: unknown;
      props_bytes: number | null;
    }>(
      `SELECT project, event_id, type, user_id, page_url, properties, octet_length(properties::text) AS props_bytes
     FROM tally.events`,
    );
    assert.ok(
      rows.every((r) => r.project === 'fuzz'),
      'nothing outside the key’s project',
    );
    assert.deepEqual(new Set(rows.map((r) => r.event_id)), accepted);
    const hasProtoKey = (v: unknown): boolean =>
      (typeof v === 'object' &&
        v !== null &&
        Object.keys(v).some((k) => k === '__proto__' || hasProtoKey((v as Record<string, unknown>)[k]))) ||
      (Array.isArray(v) && v.some(hasProtoKey));
    for (const r of rows) {
      assert.ok(r.event_id.length >= 1 && r.event_id.length <= 128, `event_id ${r.event_id.length}`);
      assert.ok(r.type.length >= 1 && r.type.length <= 128, `type length ${r.type.length}`);
      assert.ok(r.user_id.length >= 1 && r.user_id.length <= 256, `user_id length ${r.user_id.length}`);
      assert.ok(r.page_url === null || r.page_url.length <= 2048);
      assert.ok(
        r.props_bytes === null || r.props_bytes <= 32 * 1024 + 1024,
        `properties ${r.props_bytes} bytes`,
      );
      assert.ok(!hasProtoKey(r.properties), `__proto__ key stored in ${r.event_id}`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  },
);
