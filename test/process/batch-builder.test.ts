import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PROJECT_HEADER } from '../../src/kafka/codec.ts';
import {
  BatchBuilder,
  deadLetterRows,
  rejectEvents,
  type ConsumedMessage,
} from '../../src/process/batch-builder.ts';
import { DLQ_HEADERS } from '../../src/kafka/dead-letters.ts';
import { dlqRecord } from '../../src/process/dead-letter-publisher.ts';

const NOW = Date.parse('2026-03-01T12:00:00Z');

function message(
  partition: number,
  offset: number,
  value: string | Buffer,
  project?: string,
): ConsumedMessage {
  const headers = new Map<Buffer, Buffer>();
  if (project) headers.set(Buffer.from(PROJECT_HEADER), Buffer.from(project));
  return {
    topic: 'in',
    partition,
    offset: BigInt(offset),
    timestamp: BigInt(NOW),
    value: typeof value === 'string' ? Buffer.from(value) : value,
    headers,
  };
}

const good = (id: string) =>
  JSON.stringify({ event_id: id, type: 'click', user_id: 'u', timestamp: '2026-03-01T11:59:00Z' });

function builder() {
  return new BatchBuilder({ groupId: 'g', maxFutureSkewMs: 300_000, maxMessageBytes: 1024 });
}

test('events and poison messages are split, and each partition advances past its last message', () => {
  const b = builder();
  b.add(message(0, 10, good('a'), 'shop'));
  b.add(message(0, 11, 'not json'));
  b.add(message(1, 5, good('b')));
  b.add(message(1, 6, Buffer.from([0xff, 0xfe])));
  b.add(message(1, 7, 'x'.repeat(2000)));
  b.add(message(1, 8, '{"foo": 1}'));
  assert.equal(b.size, 6);
  const batch = b.take((key) => (key === 'in:0' ? 10 : null));
  assert.equal(b.size, 0, 'take() starts a new batch');
  assert.deepEqual(
    batch.events.map((e) => [e.project, e.eventId]),
    [
      ['shop', 'a'],
      ['default', 'b'],
    ],
  );
  assert.deepEqual(
    batch.poison.map((p) => [p.partition, p.offset, p.reason]),
    [
      [0, 11, 'invalid_json'],
      [1, 6, 'invalid_utf8'],
      [1, 7, 'too_large'],
      [1, 8, 'invalid_event'],
    ],
  );
  assert.deepEqual(batch.positions, [
    { groupId: 'g', topic: 'in', partition: 0, expected: 10, next: 12 },
    { groupId: 'g', topic: 'in', partition: 1, expected: null, next: 9 },
  ]);
  const rows = deadLetterRows(batch.poison);
  assert.equal(rows[0].source, 'kafka');
  assert.equal(rows[0].payload.toString(), 'not json');
});

// The builder reuses the last partition's position entry and the last project header's text
// (batch-builder.ts): interleaved partitions and projects, and a new batch, must not confuse them.
test('property: interleaved partitions and projects, across batches: each event its project, each partition its last offset', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          partition: fc.integer({ min: 0, max: 2 }),
          project: fc.constantFrom(undefined, 'shop', 'blog', 'shop2'),
          cut: fc.boolean(),
        }),
        { maxLength: 40 },
      ),
      (items) => {
        const b = builder();
        const offsets = [100, 200, 300];
        let want: { events: string[]; next: Map<number, number> } = { events: [], next: new Map() };
        const check = () => {
          const batch = b.take(() => null);
          assert.deepEqual(
            batch.events.map((e) => e.project),
            want.events,
          );
          assert.deepEqual(
            batch.positions.map((p) => [p.partition, p.next]).sort((x, y) => x[0] - y[0]),
            [...want.next].sort((x, y) => x[0] - y[0]),
          );
          want = { events: [], next: new Map() };
        };
        items.forEach((item, i) => {
          const offset = offsets[item.partition]++;
          b.add(message(item.partition, offset, good(`e${i}`), item.project));
          want.events.push(item.project ?? 'default');
          want.next.set(item.partition, offset + 1);
          if (item.cut) check();
        });
        check();
      },
    ),
  );
});

test('a batch PostgreSQL refuses becomes dead letters with the raw payloads', () => {
  const b = builder();
  b.add(message(2, 3, good('c'), 'shop'));
  const batch = b.take(() => 3);
  const rejected = rejectEvents(batch, [0], 'value too long');
  assert.deepEqual(
    rejected.map((p) => [p.partition, p.offset, p.reason, p.project, p.payload.toString()]),
    [[2, 3, 'db_rejected', 'shop', good('c')]],
  );
});

test('a dead-letter record carries the payload as is and the reason and source in headers', () => {
  const record = dlqRecord({
    topic: 'in',
    partition: 4,
    offset: 99,
    project: null,
    reason: 'invalid_utf8',
    detail: 'value is not valid UTF-8',
    payload: Buffer.from([0xff]),
  });
  assert.equal(record.topic, 'in.dlq');
  assert.deepEqual(record.value, Buffer.from([0xff]));
  const headers = new Map(
    [...(record.headers as Map<Buffer, Buffer>)].map(([k, v]) => [k.toString(), v.toString()]),
  );
  assert.deepEqual(Object.fromEntries(headers), {
    [DLQ_HEADERS.reason]: 'invalid_utf8',
    [DLQ_HEADERS.detail]: 'value is not valid UTF-8',
    [DLQ_HEADERS.topic]: 'in',
    [DLQ_HEADERS.partition]: '4',
    [DLQ_HEADERS.offset]: '99',
  });
});
