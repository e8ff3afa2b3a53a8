import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TallyEvent } from '../../src/event/types.ts';
import { MicroBatcher } from '../../src/ingest/micro-batcher.ts';

function ev(id: string): TallyEvent {
  return {
    project: 'p',
    eventId: id,
    type: 't',
    userId: 'u',
    ts: 0,
    receivedAt: 0,
    pageUrl: null,
    referrer: null,
    sessionId: null,
    service: null,
    properties: null,
  };
}

test('coalesces concurrent requests into one commit and answers each with its own flags', async () => {
  const batches: string[][] = [];
  const batcher = new MicroBatcher({
    commit: async (events) => {
      batches.push(events.map((e) => e.eventId));
      return events.map((e) => e.eventId !== 'dup');
    },
    maxBatchEvents: 100,
    lingerMs: 5,
    maxQueuedEvents: 1000,
  });
  const [a, b] = await Promise.all([batcher.submit([ev('a1'), ev('dup')]), batcher.submit([ev('b1')])]);
  assert.deepEqual(a, [true, false]);
  assert.deepEqual(b, [true]);
  assert.deepEqual(batches, [['a1', 'dup', 'b1']]);
});

test('a failed commit fails every request in it, and stop() refuses new work', async () => {
  const batcher = new MicroBatcher({
    commit: () => Promise.reject(new Error('db down')),
    maxBatchEvents: 10,
    lingerMs: 0,
    maxQueuedEvents: 100,
  });
  await assert.rejects(batcher.submit([ev('x')]), /db down/);
  await batcher.stop();
  await assert.rejects(batcher.submit([ev('y')]), { code: 'TALLY_SHUTTING_DOWN' });
});

test('stop() waits for queued work to commit', async () => {
  let committed = 0;
  const batcher = new MicroBatcher({
    commit: async (events) => {
      await new Promise((r) => setTimeout(r, 20));
      committed += events.length;
      return events.map(() => true);
    },
    maxBatchEvents: 2,
    lingerMs: 50,
    maxQueuedEvents: 100,
  });
  const pending = [batcher.submit([ev('1')]), batcher.submit([ev('2')]), batcher.submit([ev('3')])];
  await batcher.stop();
  assert.equal(committed, 3);
  await Promise.all(pending);
});

test('refuses work beyond the queue bound', async () => {
  const batcher = new MicroBatcher({
    commit: (events) => new Promise<boolean[]>((r) => setTimeout(() => r(events.map(() => true)), 20)),
    maxBatchEvents: 1,
    lingerMs: 0,
    maxQueuedEvents: 2,
  });
  const first = batcher.submit([ev('1')]); // in flight
  const queued = batcher.submit([ev('2'), ev('3')]);
  await assert.rejects(batcher.submit([ev('4')]), { code: 'TALLY_UNAVAILABLE' });
  await Promise.all([first, queued]);
});
