import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { StallDetector, type ProgressSample } from '../../src/process/stall-detector.ts';

function setup(stallAfterMs = 10_000) {
  let now = 1_000_000;
  const metrics = createMetrics(undefined, { defaults: false });
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (l: string) => lines.push(JSON.parse(l) as { level: number; msg: string }) },
  );
  const detector = new StallDetector({ metrics, logger, now: () => now }, stallAfterMs);
  const gauge = async (name: 'processorStalled' | 'processorSecondsSinceProgress') =>
    (await metrics[name].get()).values[0]?.value;
  return {
    detector,
    lines,
    gauge,
    advance: (ms: number) => (now += ms),
  };
}

const owned = (lag: number, positions: number, partitions = 't:0 t:1'): ProgressSample => ({
  scope: 'owned',
  partitions,
  lag,
  positions,
});

test('lag and no commit for the stall timeout: stalled, said once, and cleared by the next commit', async () => {
  const { detector, lines, gauge, advance } = setup();
  detector.observe(owned(50, 100));
  advance(9_000);
  detector.observe(owned(80, 100));
  assert.equal(detector.stalledReason, undefined, 'not before the timeout');
  assert.equal(await gauge('processorStalled'), 0);
  advance(2_000);
  detector.observe(owned(90, 100));
  assert.match(detector.stalledReason ?? '', /no batch committed for 11 s while its partitions have lag 90/);
  assert.equal(await gauge('processorStalled'), 1);
  assert.equal(await gauge('processorSecondsSinceProgress'), 11);
  advance(2_000);
  detector.observe(owned(95, 100));
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'one warning per stall');
  assert.match(lines.find((l) => l.level === 40)?.msg ?? '', /processor stalled/);
  detector.progressed();
  detector.observe(owned(95, 100));
  assert.equal(detector.stalledReason, undefined);
  assert.equal(await gauge('processorStalled'), 0);
  assert.ok(lines.some((l) => l.msg === 'processor making progress again'));
});

test('positions advancing, or no lag at all, is progress', () => {
  const { detector, advance } = setup();
  detector.observe(owned(50, 100));
  for (let i = 1; i <= 10; i++) {
    advance(5_000);
    detector.observe(owned(50, 100 + i));
  }
  assert.equal(detector.stalledReason, undefined, 'stored positions grew every tick');
  for (let i = 0; i < 10; i++) {
    advance(5_000);
    detector.observe(owned(0, 110));
  }
  assert.equal(detector.stalledReason, undefined, 'nothing to do is not a stall');
});

test('a new assignment is not mistaken for progress', () => {
  const { detector, advance } = setup();
  detector.observe(owned(50, 100, 't:0'));
  advance(6_000);
  // Rebalanced onto partitions whose positions sum higher: not a commit.
  detector.observe(owned(50, 900, 't:0 t:1'));
  advance(6_000);
  detector.observe(owned(50, 900, 't:0 t:1'));
  assert.match(detector.stalledReason ?? '', /no batch committed/);
});

test('no assignment while the group has lag and makes no progress: stalled', () => {
  const { detector, advance } = setup();
  const group = (lag: number, positions: number): ProgressSample => ({
    scope: 'group',
    partitions: 't:0 t:1 t:2',
    lag,
    positions,
  });
  detector.observe(group(30, 10));
  advance(6_000);
  detector.observe(group(30, 20));
  advance(6_000);
  detector.observe(group(30, 25));
  assert.equal(detector.stalledReason, undefined, 'another member is committing');
  advance(11_000);
  detector.observe(group(30, 25));
  assert.match(
    detector.stalledReason ?? '',
    /no partitions assigned, and the group made no progress for 11 s with lag 30/,
  );
});
