import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeEvent } from '../../src/event/normalize.ts';

const now = Date.UTC(2024, 6, 1, 12, 0, 0);
const ctx = { project: 'p', receivedAt: now, maxFutureSkewMs: 300_000 };

test('canonical event keeps every field', () => {
  const r = normalizeEvent(
    {
      event_id: 'e1',
      type: 'page_view',
      user_id: 'u1',
      timestamp: '2024-07-01T11:00:00Z',
      page_url: 'https://x/a',
      referrer: 'https://g',
      session_id: 's',
      service: 'web',
      properties: { a: 1 },
    },
    ctx,
  );
  assert.ok(r.ok);
  assert.deepEqual(r.event, {
    project: 'p',
    eventId: 'e1',
    type: 'page_view',
    userId: 'u1',
    ts: Date.UTC(2024, 6, 1, 11),
    receivedAt: now,
    pageUrl: 'https://x/a',
    referrer: 'https://g',
    sessionId: 's',
    service: 'web',
    properties: '{"a":1}',
    userAgent: null,
    country: null,
  });
});

test('seed 000 shape: activity_type and metadata', () => {
  const r = normalizeEvent(
    {
      user_id: '12345',
      activity_type: 'page_view',
      timestamp: '2024-07-01T11:34:56Z',
      metadata: { page_url: 'https://example.com/home', referrer: 'https://google.com', campaign: 'x' },
    },
    ctx,
  );
  assert.ok(r.ok);
  assert.equal(r.event.type, 'page_view');
  assert.equal(r.event.pageUrl, 'https://example.com/home');
  assert.equal(r.event.referrer, 'https://google.com');
  assert.equal(r.event.properties, '{"campaign":"x"}');
  assert.match(r.event.eventId, /^[0-9a-f-]{36}$/);
});

test('seed 003 and 004 shapes', () => {
  const s3 = normalizeEvent(
    {
      event_id: 'test_123',
      user_id: 'user_1',
      event_type: 'click',
      page_url: 'https://example.com',
      time_stamp: '2024-07-01T11:00:00Z',
    },
    ctx,
  );
  assert.ok(s3.ok);
  assert.equal(s3.event.type, 'click');
  assert.equal(s3.event.ts, Date.UTC(2024, 6, 1, 11));
  const s4 = normalizeEvent(
    {
      event_type: 'user.login',
      user_id: 'u',
      service: 'auth-service',
      timestamp: '2024-07-01T11:00:00Z',
      data: { ip: '1.2.3.4' },
    },
    ctx,
  );
  assert.ok(s4.ok);
  assert.equal(s4.event.service, 'auth-service');
  assert.equal(s4.event.properties, '{"ip":"1.2.3.4"}');
});

test('missing timestamp takes the receive time; sent_at corrects skew', () => {
  const a = normalizeEvent({ type: 't', user_id: 'u' }, ctx);
  assert.ok(a.ok);
  assert.equal(a.event.ts, now);
  // Client clock 2 h fast: it says the event happened at 13:59 and was sent at 14:00.
  const b = normalizeEvent(
    { type: 't', user_id: 'u', timestamp: '2024-07-01T13:59:00Z', sent_at: '2024-07-01T14:00:00Z' },
    ctx,
  );
  assert.ok(b.ok);
  assert.equal(b.event.ts, Date.UTC(2024, 6, 1, 11, 59));
});

test('far-future timestamps are rejected, near-future accepted', () => {
  const far = normalizeEvent({ type: 't', user_id: 'u', timestamp: now + 301_000 }, ctx);
  assert.equal(far.ok, false);
  assert.equal(!far.ok && far.issues[0]?.code, 'TALLY_TIMESTAMP_IN_FUTURE');
  assert.ok(normalizeEvent({ type: 't', user_id: 'u', timestamp: now + 299_000 }, ctx).ok);
});

test('each problem names its field and code', () => {
  const cases: [unknown, string, string][] = [
    [{ type: 't' }, 'user_id', 'TALLY_FIELD_REQUIRED'],
    [{ user_id: 'u' }, 'type', 'TALLY_FIELD_REQUIRED'],
    [{ type: 't', user_id: 42 }, 'user_id', 'TALLY_INVALID_TYPE'],
    [{ type: 't', user_id: 'x'.repeat(257) }, 'user_id', 'TALLY_FIELD_TOO_LONG'],
    [{ type: 'x'.repeat(129), user_id: 'u' }, 'type', 'TALLY_FIELD_TOO_LONG'],
    [{ type: 't', user_id: 'u', event_id: 'x'.repeat(129) }, 'event_id', 'TALLY_FIELD_TOO_LONG'],
    [{ type: 't', user_id: 'u', page_url: 'x'.repeat(2049) }, 'page_url', 'TALLY_FIELD_TOO_LONG'],
    [{ type: 't', user_id: 'u', timestamp: 'soon' }, 'timestamp', 'TALLY_INVALID_TIMESTAMP'],
    [{ type: 't', user_id: 'u', properties: [1] }, 'properties', 'TALLY_INVALID_TYPE'],
    [
      { type: 't', user_id: 'u', properties: { a: 'x'.repeat(33 * 1024) } },
      'properties',
      'TALLY_FIELD_TOO_LONG',
    ],
    [{ type: 't', user_id: 'u\u0000' }, 'user_id', 'TALLY_INVALID_VALUE'],
    [{ type: 't', user_id: 'u', properties: { k: '\ud800' } }, 'properties', 'TALLY_INVALID_VALUE'],
    ['str', '(event)', 'TALLY_NOT_AN_OBJECT'],
  ];
  for (const [input, field, code] of cases) {
    const r = normalizeEvent(input, ctx);
    assert.equal(r.ok, false, JSON.stringify(input).slice(0, 80));
    if (!r.ok) assert.deepEqual([r.issues[0]?.field, r.issues[0]?.code], [field, code]);
  }
});

test('deeply nested properties are refused without overflowing the stack', () => {
  let deep: Record<string, unknown> = {};
  const root = deep;
  for (let i = 0; i < 10_000; i++) {
    const next = {};
    deep.a = next;
    deep = next;
  }
  const r = normalizeEvent({ type: 't', user_id: 'u', properties: root }, ctx);
  assert.equal(r.ok, false);
});
