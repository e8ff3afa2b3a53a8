import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { TallyError } from '../../src/errors/tally-error.ts';
import { BatchBuilder } from '../../src/process/batch-builder.ts';
import { writeBatch } from '../../src/process/write-batch.ts';
import type { BatchInput, BatchResult } from '../../src/store/batch-writer.ts';

function batchOf(ids: string[]) {
  const b = new BatchBuilder({ groupId: 'g', maxFutureSkewMs: 300_000, maxMessageBytes: 1 << 20 });
  ids.forEach((id, i) =>
    b.add({
      topic: 'in',
      partition: i % 2,
      offset: BigInt(i),
      timestamp: BigInt(Date.now()),
      value: Buffer.from(
        id === 'poison' ? 'not json' : JSON.stringify({ event_id: id, type: 'click', user_id: 'u' }),
      ),
      headers: new Map(),
    }),
  );
  return b.take(() => 0);
}

/** A BatchProcessor that refuses, for good, any transaction holding an event whose id ends in -bad. */
function fakes() {
  const calls: BatchInput[] = [];
  const sent: string[] = [];
  const processor = {
    process(input: BatchInput): Promise<BatchResult> {
      if (input.events.some((e) => e.eventId.endsWith('-bad')))
        return Promise.reject(new TallyError('TALLY_DB_ERROR', 'PostgreSQL: refused'));
      calls.push(input);
      return Promise.resolve({
        fresh: [],
        ofDeletedUser: [],
        inserted: 0,
        duplicates: 0,
        dropped: 0,
        insertedEvents: [],
        insertedBots: 0,
      });
    },
  };
  const producer = {
    send(options: { messages: { value?: Buffer }[] }) {
      for (const m of options.messages) sent.push(String(m.value));
      return Promise.resolve({ offsets: [] });
    },
  };
  const deps = {
    processor,
    producer: producer as never,
    logger: pino({ level: 'silent' }),
    retry: { maxRetryTimeMs: 0, minDelayMs: 1, maxDelayMs: 1 },
    signal: new AbortController().signal,
  };
  return { calls, sent, deps };
}

test('a clean batch is one transaction with its poison and positions; poison goes to the DLQ first', async () => {
  const { calls, sent, deps } = fakes();
  const batch = batchOf(['a', 'poison', 'b']);
  await writeBatch(batch, deps);
  assert.equal(calls.length, 1);
  assert.deepEqual(
    calls[0].events.map((e) => e.eventId),
    ['a', 'b'],
  );
  assert.deepEqual(
    calls[0].deadLetters?.map((d) => d.reason),
    ['invalid_json'],
  );
  assert.equal(calls[0].positions?.length, 2);
  assert.deepEqual(sent, ['not json']);
});

test('events PostgreSQL refuses are isolated: the rest commit, the refused are dead-lettered with the positions', async () => {
  const { calls, sent, deps } = fakes();
  const ids = Array.from({ length: 37 }, (_, i) => (i === 5 || i === 30 ? `e${i}-bad` : `e${i}`));
  const batch = batchOf(ids);
  await writeBatch(batch, deps);
  const committed = calls.flatMap((c) => c.events.map((e) => e.eventId)).sort();
  assert.deepEqual(committed, ids.filter((id) => !id.endsWith('-bad')).sort(), 'every good event, once');
  const last = calls.at(-1);
  assert.deepEqual(last?.events, []);
  assert.deepEqual(
    last?.deadLetters?.map((d) => [
      d.reason,
      (JSON.parse(d.payload.toString()) as { event_id: string }).event_id,
    ]),
    [
      ['db_rejected', 'e5-bad'],
      ['db_rejected', 'e30-bad'],
    ],
  );
  assert.deepEqual(last?.positions, batch.positions);
  assert.equal(
    calls.filter((c) => c.positions !== undefined).length,
    1,
    'positions move once, with the dead letters',
  );
  assert.equal(sent.length, 2);
});

test('a fence is not a rejection: it is thrown to the caller untouched', async () => {
  const { deps } = fakes();
  deps.processor.process = () => Promise.reject(new TallyError('TALLY_FENCED', 'moved'));
  await assert.rejects(writeBatch(batchOf(['a']), deps), { code: 'TALLY_FENCED' });
});

test('an event that times out on its own (the BatchProcessor gave up on it) is dead-lettered; the rest commit', async () => {
  const { calls, sent, deps } = fakes();
  deps.processor.process = (input: BatchInput) => {
    if (input.events.some((e) => e.eventId.endsWith('-slow')))
      return Promise.reject(
        new TallyError('TALLY_DB_TIMEOUT', 'PostgreSQL: canceling statement due to statement timeout'),
      );
    calls.push(input);
    return Promise.resolve({
      fresh: [],
      ofDeletedUser: [],
      inserted: 0,
      duplicates: 0,
      dropped: 0,
      insertedEvents: [],
      insertedBots: 0,
    });
  };
  const ids = Array.from({ length: 20 }, (_, i) => (i === 11 ? `e${i}-slow` : `e${i}`));
  await writeBatch(batchOf(ids), deps);
  const committed = calls.flatMap((c) => c.events.map((e) => e.eventId)).sort();
  assert.deepEqual(committed, ids.filter((id) => id !== 'e11-slow').sort());
  assert.deepEqual(
    calls.at(-1)?.deadLetters?.map((d) => [d.reason, d.detail]),
    [['db_rejected', 'PostgreSQL: canceling statement due to statement timeout']],
  );
  assert.equal(sent.length, 1);
});

test('a batch whose timeouts pass while it is split loses nothing: every event commits, none is dead-lettered', async () => {
  const { calls, sent, deps } = fakes();
  let failures = 1;
  const fake = deps.processor.process.bind(deps.processor);
  deps.processor.process = (input: BatchInput) =>
    failures-- > 0 ? Promise.reject(new TallyError('TALLY_DB_TIMEOUT', 'timed out')) : fake(input);
  const ids = Array.from({ length: 9 }, (_, i) => `e${i}`);
  await writeBatch(batchOf(ids), deps);
  assert.deepEqual(calls.flatMap((c) => c.events.map((e) => e.eventId)).sort(), ids.sort());
  assert.deepEqual(calls.at(-1)?.deadLetters, []);
  assert.equal(sent.length, 0);
});

test("a timeout that is not the events' (every write times out: an overloaded server) dead-letters nothing: it is thrown after one split, for the batch to be read again", async () => {
  const { sent, deps } = fakes();
  const writes: number[] = [];
  deps.processor.process = (input: BatchInput) => {
    writes.push(input.events.length);
    return Promise.reject(new TallyError('TALLY_DB_TIMEOUT', 'timed out'));
  };
  const batch = batchOf(Array.from({ length: 1000 }, (_, i) => `e${i}`));
  await assert.rejects(writeBatch(batch, deps), { code: 'TALLY_DB_TIMEOUT' });
  assert.deepEqual(writes, [1000, 500, 500], 'the batch, then its two halves, and no further split');
  assert.deepEqual(batch.poison, []);
  assert.equal(sent.length, 0);
});

test('a lone event that times out is not dead-lettered: there is no sibling to show the server could do the work', async () => {
  const { sent, deps } = fakes();
  deps.processor.process = () => Promise.reject(new TallyError('TALLY_DB_TIMEOUT', 'timed out'));
  const batch = batchOf(['a']);
  await assert.rejects(writeBatch(batch, deps), { code: 'TALLY_DB_TIMEOUT' });
  assert.deepEqual(batch.poison, []);
  assert.equal(sent.length, 0);
});

test('an event timing out beside a refused one is not dead-lettered for its timeout; the refused one is not either until the batch goes through', async () => {
  const { sent, deps } = fakes();
  const fake = deps.processor.process.bind(deps.processor);
  deps.processor.process = (input: BatchInput) =>
    input.events.some((e) => e.eventId.endsWith('-slow'))
      ? Promise.reject(new TallyError('TALLY_DB_TIMEOUT', 'timed out'))
      : fake(input);
  const batch = batchOf(['a', 'b', 'c-slow', 'd-bad']);
  await assert.rejects(writeBatch(batch, deps), { code: 'TALLY_DB_TIMEOUT' });
  assert.deepEqual(batch.poison, []);
  assert.equal(sent.length, 0);
});
