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
    userAgent: null,
    country: null,
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

function deferred() {
  let release!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return { promise, release, fail };
}

test('with maxInFlight 2, a second batch commits while the first is in flight, and no third', async () => {
  const gates: ReturnType<typeof deferred>[] = [];
  const batches: string[][] = [];
  let inFlight = 0;
  let peak = 0;
  const started = deferred();
  const batcher = new MicroBatcher({
    commit: async (events) => {
      batches.push(events.map((e) => e.eventId));
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      const gate = deferred();
      gates.push(gate);
      if (gates.length === 2) started.release();
      try {
        await gate.promise;
      } finally {
        inFlight -= 1;
      }
      return events.map(() => true);
    },
    maxBatchEvents: 100,
    lingerMs: 0,
    maxQueuedEvents: 1000,
    maxInFlight: 2,
  });
  const a = batcher.submit([ev('a')]);
  const b = batcher.submit([ev('b')]);
  await started.promise; // both batches are committing at once
  const c = batcher.submit([ev('c')]);
  const d = batcher.submit([ev('d')]);
  assert.equal(gates.length, 2, 'c and d wait for a free slot');
  gates[1].release();
  assert.deepEqual(await b, [true]);
  // The freed slot takes everything queued meanwhile as one batch.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(batches, [['a'], ['b'], ['c', 'd']]);
  gates[0].release();
  gates[2].release();
  assert.deepEqual(await Promise.all([a, c, d]), [[true], [true], [true]]);
  assert.equal(peak, 2);
  await batcher.stop();
});

test('a failing batch fails only its own requests, not the batch in flight beside it', async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const batcher = new MicroBatcher({
    commit: async (events) => {
      const gate = deferred();
      gates.set(events[0].eventId, gate);
      await gate.promise;
      return events.map(() => true);
    },
    maxBatchEvents: 100,
    lingerMs: 0,
    maxQueuedEvents: 1000,
    maxInFlight: 2,
  });
  const ok = batcher.submit([ev('ok')]);
  const bad = batcher.submit([ev('bad')]);
  await new Promise((r) => setImmediate(r));
  gates.get('bad')!.fail(new Error('db down'));
  await assert.rejects(bad, /db down/);
  gates.get('ok')!.release();
  assert.deepEqual(await ok, [true]);
  await batcher.stop();
});

test('stop() waits for every batch in flight and everything queued', async () => {
  let committed = 0;
  const batcher = new MicroBatcher({
    commit: async (events) => {
      await new Promise((r) => setTimeout(r, 5));
      committed += events.length;
      return events.map(() => true);
    },
    maxBatchEvents: 1,
    lingerMs: 0,
    maxQueuedEvents: 100,
    maxInFlight: 3,
  });
  const pending = Array.from({ length: 7 }, (_, i) => batcher.submit([ev(String(i))]));
  await batcher.stop();
  assert.equal(committed, 7);
  await Promise.all(pending);
});
