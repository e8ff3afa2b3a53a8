import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuRows, measureDrain, type Drain } from '../../bench/lib/drain-window.ts';

const NO_SERVERS = { postgres: undefined, broker: undefined };

/** A drain whose commits come as `counts`, one per poll (the last repeated), burning `busyMs` of CPU in each poll after the first. */
function scripted(counts: readonly number[], busyMs = 0): Drain & { polls: () => number } {
  let polls = 0;
  return {
    total: 1_000,
    committed: async () => {
      if (polls > 0) {
        const until = performance.now() + busyMs;
        while (performance.now() < until);
      }
      return counts[Math.min(polls++, counts.length - 1)];
    },
    // This test's own process: the CPU it burns between the first commit and the last is the drain's.
    pids: [process.pid],
    servers: NO_SERVERS,
    timeoutMs: 60_000,
    timedOut: (n) => new Error(`stalled at ${n}`),
    polls: () => polls,
  };
}

test('the window runs from the first poll that sees a commit to the one that sees the total', async () => {
  const window = await measureDrain(scripted([0, 0, 100, 400, 1_000], 30));
  assert.equal(window.measured, 900);
  assert.equal(window.committed, 1_000);
  assert.ok(window.rate > 0 && Number.isFinite(window.rate), `rate ${window.rate}`);
  // Two polls of 30 ms busy each between the samples: at least a tick (10 ms) over 900 events.
  assert.ok(window.cpuUs.process >= 10, `process ${window.cpuUs.process} µs/event`);
  // Servers not found on this machine are n/a, not zero.
  assert.ok(Number.isNaN(window.cpuUs.postgres) && Number.isNaN(window.cpuUs.broker));
});

test('the window opens only once the drain is ready', async () => {
  const drain = scripted([0, 100, 400, 700, 1_000]);
  const window = await measureDrain({ ...drain, ready: () => drain.polls() >= 3 });
  assert.equal(window.measured, 600);
});

test('a drain committed within one poll has no rate and no CPU per event', async () => {
  const window = await measureDrain(scripted([1_000]));
  assert.equal(window.measured, 0);
  assert.ok(Number.isNaN(window.rate));
  assert.ok(Object.values(window.cpuUs).every(Number.isNaN));
});

test('a stalled drain ends with its own error, after asking check', async () => {
  let checked = 0;
  await assert.rejects(
    measureDrain({
      ...scripted([5]),
      timeoutMs: 50,
      check: async () => {
        checked++;
      },
    }),
    /stalled at 5/,
  );
  assert.ok(checked > 0);
});

test('cpuRows gives one row per kind of process, targets only where given', () => {
  const rows = cpuRows(
    '3. processor, CPU',
    'with raw storage on',
    { process: 12.34, postgres: 20, broker: Number.NaN },
    { targets: { postgres: '≤ 15 µs/event' } },
  );
  assert.deepEqual(
    rows.map((r) => [r.metric.split(':')[0], r.tally, r.target]),
    [
      ['tally process', 12.3, undefined],
      ['PostgreSQL', 20, '≤ 15 µs/event'],
      ['Kafka broker', Number.NaN, undefined],
    ],
  );
  assert.ok(rows.every((r) => r.unit === 'µs/event' && r.metric.includes('with raw storage on,')));
});
