import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { AssignedPositions } from '../../src/process/assigned-positions.ts';
import type { PendingBatch } from '../../src/process/batch-builder.ts';
import { BatchCommitter, type BatchCommitterDeps } from '../../src/process/batch-committer.ts';
import type { BatchResult } from '../../src/store/batch-writer.ts';

type Offsets = { topic: string; partition: number; offset: bigint }[];

/** A batch that stored nothing but moved `next` offsets of topic `in` (partition → next). */
function batchTo(next: Record<number, number>): PendingBatch {
  return {
    events: [],
    sources: [],
    poison: [],
    size: 0,
    positions: Object.entries(next).map(([partition, n]) => ({
      groupId: 'g',
      topic: 'in',
      partition: Number(partition),
      expected: null,
      next: n,
    })),
  };
}

/** A committer whose Kafka commits wait until the test settles them, and whose member may be rejoining. */
function setUp() {
  const member = { active: true };
  const commits: { offsets: Offsets; settle: () => void }[] = [];
  const consumer = {
    closed: false,
    isActive: () => member.active,
    commit(options: { offsets: Offsets }) {
      return new Promise<void>((resolve) => commits.push({ offsets: options.offsets, settle: resolve }));
    },
  };
  const result: BatchResult = {
    fresh: [],
    ofDeletedUser: [],
    inserted: 0,
    duplicates: 0,
    dropped: 0,
    insertedEvents: [],
    insertedBots: 0,
  };
  const positions = new AssignedPositions();
  positions.replace(
    new Map([
      ['in:0', null],
      ['in:1', null],
    ]),
  );
  const deps = {
    processor: { process: () => Promise.resolve(result) },
    producer: {},
    consumer,
    metrics: { deadLetters: { inc: () => undefined } },
    logger: pino({ level: 'silent' }),
    positions,
    rebalancer: {
      generation: 1,
      signal: new AbortController().signal,
      failed: () => undefined,
      succeeded: () => undefined,
      schedule: () => undefined,
    },
    stalls: { progressed: () => undefined },
  } as unknown as BatchCommitterDeps;
  const committer = new BatchCommitter({ maxRetryTimeMs: 0, minDelayMs: 1, maxDelayMs: 1 }, deps);
  const sent = (i: number) => commits[i].offsets.map((o) => `${o.partition}:${o.offset}`).sort();
  return { committer, commits, sent, member, positions };
}

test('one Kafka offset commit in flight; the batches committed meanwhile go in the next, newest offset per partition', async () => {
  const { committer, commits, sent } = setUp();
  await committer.commit(batchTo({ 0: 10 }), 1);
  assert.equal(commits.length, 1);
  assert.deepEqual(sent(0), ['0:10']);
  await committer.commit(batchTo({ 0: 20, 1: 5 }), 1);
  await committer.commit(batchTo({ 0: 30 }), 1);
  assert.equal(commits.length, 1, 'no second commit while one is in flight');
  commits[0].settle();
  await sleep(0);
  assert.equal(commits.length, 2);
  assert.deepEqual(sent(1), ['0:30', '1:5']);
  commits[1].settle();
  await sleep(0);
  assert.equal(commits.length, 2, 'nothing left to commit');
});

test('no Kafka offset commit while the member rejoins (the client would rejoin again); sent once it is back', async () => {
  const { committer, commits, sent, member } = setUp();
  member.active = false;
  await committer.commit(batchTo({ 0: 10 }), 1);
  await committer.commit(batchTo({ 1: 7 }), 1);
  assert.equal(commits.length, 0);
  member.active = true;
  await sleep(1200);
  assert.equal(commits.length, 1);
  assert.deepEqual(sent(0), ['0:10', '1:7']);
});

test('a partition that moved away meanwhile is left to its new owner to commit', async () => {
  const { committer, commits, sent, positions } = setUp();
  await committer.commit(batchTo({ 0: 10 }), 1);
  await committer.commit(batchTo({ 0: 20, 1: 5 }), 1);
  positions.replace(new Map([['in:1', 5]]));
  commits[0].settle();
  await sleep(0);
  assert.deepEqual(sent(1), ['1:5']);
});

test('stopping, flushOffsets waits for the commit in flight and sends the offsets written after it', async () => {
  const { committer, commits, sent } = setUp();
  await committer.commit(batchTo({ 0: 10 }), 1);
  await committer.commit(batchTo({ 0: 20 }), 1);
  let flushed = false;
  const flushing = committer.flushOffsets().then(() => (flushed = true));
  await sleep(0);
  assert.equal(flushed, false, 'waits for the commit in flight');
  commits[0].settle();
  await sleep(0);
  assert.deepEqual(sent(1), ['0:20'], 'the last batch is committed too');
  assert.equal(flushed, false, 'and waits for that one');
  commits[1].settle();
  await flushing;
});
