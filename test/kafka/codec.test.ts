import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEventMessage, encodeEvent, PROJECT_HEADER } from '../../src/kafka/codec.ts';
import { normalizeEvent } from '../../src/event/normalize.ts';

const ctx = {
  project: undefined,
  messageTimestamp: Date.parse('2026-01-01T00:00:10Z'),
  maxFutureSkewMs: 300_000,
  maxBytes: 1 << 20,
};

test('an encoded event decodes to the same event', () => {
  const receivedAt = Date.parse('2026-01-01T00:00:05.123Z');
  const normalized = normalizeEvent(
    {
      event_id: 'e1',
      type: 'click',
      user_id: 'u1',
      timestamp: '2026-01-01T00:00:01.500Z',
      sent_at: '2026-01-01T00:00:02Z',
      page_url: '/a',
      properties: { n: 1, nested: { s: 'x' } },
    },
    { project: 'shop', receivedAt, maxFutureSkewMs: 300_000 },
  );
  assert.ok(normalized.ok);
  const encoded = encodeEvent(normalized.event);
  assert.equal(encoded.headers.get(PROJECT_HEADER), 'shop');
  const decoded = decodeEventMessage(Buffer.from(encoded.value), { ...ctx, project: 'shop' });
  assert.deepEqual(decoded, { ok: true, event: normalized.event });
});

test('user_agent and country travel through Kafka: what ingest resolved is what the processor stores', () => {
  const receivedAt = Date.parse('2026-01-01T00:00:05Z');
  const normalized = normalizeEvent(
    { type: 'page_view', user_id: 'u1', page_url: 'https://shop.example/a' },
    { project: 'shop', receivedAt, maxFutureSkewMs: 300_000 },
  );
  assert.ok(normalized.ok);
  // As ingest completes it from the request: the User-Agent header and the client's country.
  const event = { ...normalized.event, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) "quoted"', country: 'US' };
  const encoded = encodeEvent(event);
  assert.equal((JSON.parse(encoded.value) as { country: string }).country, 'US');
  const decoded = decodeEventMessage(Buffer.from(encoded.value), { ...ctx, project: 'shop' });
  assert.deepEqual(decoded, { ok: true, event });
});

test('a message with a bad country is a dead letter naming the field', () => {
  const decoded = decodeEventMessage(Buffer.from('{"type":"a","user_id":"u","country":"Germany"}'), ctx);
  assert.equal(decoded.ok, false);
  if (!decoded.ok) {
    assert.equal(decoded.reason, 'invalid_event');
    assert.match(decoded.detail, /^country: /);
  }
});

test('the encoded value is the canonical JSON of the event, whatever its strings hold', () => {
  const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
  const optional = fc.option(text, { nil: null });
  fc.assert(
    fc.property(
      fc.record({
        project: text,
        eventId: text,
        type: text,
        userId: text,
        ts: fc.integer({ min: 0, max: 4102444800000 }),
        receivedAt: fc.integer({ min: 0, max: 4102444800000 }),
        pageUrl: optional,
        referrer: optional,
        sessionId: optional,
        service: optional,
        userAgent: optional,
        country: optional,
        properties: fc.option(
          fc.jsonValue().map((v) => JSON.stringify({ v })),
          { nil: null },
        ),
      }),
      (event) => {
        const { value, key, headers } = encodeEvent(event);
        const canonical = {
          event_id: event.eventId,
          type: event.type,
          user_id: event.userId,
          timestamp: new Date(event.ts).toISOString(),
          received_at: new Date(event.receivedAt).toISOString(),
          page_url: event.pageUrl ?? undefined,
          referrer: event.referrer ?? undefined,
          session_id: event.sessionId ?? undefined,
          service: event.service ?? undefined,
          user_agent: event.userAgent ?? undefined,
          country: event.country ?? undefined,
          properties: event.properties === null ? undefined : (JSON.parse(event.properties) as unknown),
        };
        assert.equal(value, JSON.stringify(canonical));
        assert.equal(key, `${event.project}\u001f${event.userId}`);
        assert.equal(headers.get(PROJECT_HEADER), event.project);
      },
    ),
    { numRuns: 2000 },
  );
});

test('seed 004 messages written straight into Kafka take the record timestamp as receive time', () => {
  const value = Buffer.from(
    JSON.stringify({
      event_type: 'user.login',
      user_id: 'u9',
      service: 'auth',
      timestamp: '2026-01-01T00:00:00Z',
      data: { ip: '1' },
    }),
  );
  const decoded = decodeEventMessage(value, ctx);
  assert.ok(decoded.ok);
  assert.equal(decoded.event.project, 'default');
  assert.equal(decoded.event.receivedAt, ctx.messageTimestamp);
  assert.equal(decoded.event.service, 'auth');
  assert.equal(decoded.event.properties, '{"ip":"1"}');
});

test('poison messages come back with a reason', () => {
  const cases: [Buffer | undefined, string][] = [
    [undefined, 'empty'],
    [Buffer.from('not json'), 'invalid_json'],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'invalid_utf8'],
    [Buffer.from('{"type":"click"}'), 'invalid_event'],
    [Buffer.from('{"__proto__":{"x":1},"type":"a","user_id":"u"}'), 'invalid_json'],
    [Buffer.alloc(2 << 20, 0x20), 'too_large'],
  ];
  for (const [value, reason] of cases) {
    const decoded = decodeEventMessage(value, ctx);
    assert.equal(decoded.ok, false);
    if (!decoded.ok) {
      assert.equal(decoded.reason, reason);
      assert.ok(decoded.detail.length > 0);
    }
  }
});
