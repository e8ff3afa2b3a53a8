import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeEvent } from '../../src/event/normalize.ts';

const now = Date.UTC(2024, 6, 1, 12, 0, 0);
const ctx = { project: 'p', receivedAt: now, maxFutureSkewMs: 300_000 };

function event(input: Record<string, unknown>) {
  const r = normalizeEvent({ user_id: 'u', ...input }, ctx);
  assert.ok(r.ok, JSON.stringify(r));
  return r.event;
}

function issues(input: Record<string, unknown>) {
  const r = normalizeEvent({ user_id: 'u', ...input }, ctx);
  assert.ok(!r.ok);
  return r.issues.map((i) => `${i.field} ${i.code}`);
}

test('the canonical name wins over an alias; a null value counts as absent', () => {
  assert.equal(event({ type: 'a', event_type: 'b', activity_type: 'c' }).type, 'a');
  assert.equal(event({ type: null, event_type: 'b', activity_type: 'c' }).type, 'b');
  assert.equal(event({ activity_type: 'c' }).type, 'c');
  const ts = event({ type: 't', timestamp: '2024-07-01T10:00:00Z', time_stamp: '2024-07-01T11:00:00Z' }).ts;
  assert.equal(ts, Date.UTC(2024, 6, 1, 10));
  assert.equal(
    event({ type: 't', timestamp: null, time_stamp: '2024-07-01T11:00:00Z' }).ts,
    Date.UTC(2024, 6, 1, 11),
  );
});

test('problems are reported under the name the event used', () => {
  assert.deepEqual(issues({ event_type: 7 }), ['event_type TALLY_INVALID_TYPE']);
  assert.deepEqual(issues({}), ['type TALLY_FIELD_REQUIRED']);
  assert.deepEqual(issues({ type: 't', time_stamp: 'soon' }), ['time_stamp TALLY_INVALID_TIMESTAMP']);
  assert.deepEqual(issues({ type: 't', data: [1] }), ['data TALLY_INVALID_TYPE']);
  assert.deepEqual(issues({ type: 't', metadata: { page_url: 1, referrer: 2 } }), [
    'metadata.page_url TALLY_INVALID_TYPE',
    'metadata.referrer TALLY_INVALID_TYPE',
  ]);
});

test('properties: `properties`, else `data`, else what metadata holds besides page_url and referrer', () => {
  assert.equal(event({ type: 't', properties: { a: 1 }, data: { b: 2 } }).properties, '{"a":1}');
  // A null `properties` is given (as none), so `data` is not read.
  assert.equal(event({ type: 't', properties: null, data: { b: 2 } }).properties, null);
  assert.equal(event({ type: 't', data: { b: 2 }, metadata: { c: 3 } }).properties, '{"b":2}');
  const nested = event({ type: 't', metadata: { page_url: 'https://x/', referrer: 'https://r/', c: 3 } });
  assert.equal(nested.properties, '{"c":3}');
  assert.equal(nested.pageUrl, 'https://x/');
  assert.equal(nested.referrer, 'https://r/');
  assert.equal(event({ type: 't', metadata: { page_url: 'https://x/' } }).properties, null);
});

test('top-level page_url and referrer win over those in metadata', () => {
  const e = event({
    type: 't',
    page_url: 'https://top/',
    metadata: { page_url: 'https://x/', referrer: 'https://r/' },
  });
  assert.equal(e.pageUrl, 'https://top/');
  assert.equal(e.referrer, 'https://r/');
});
