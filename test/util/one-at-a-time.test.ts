import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OneAtATime } from '../../src/util/one-at-a-time.ts';

test('tasks run one at a time, in order, and a failure does not stop the next', async () => {
  const serial = new OneAtATime();
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const task =
    (i: number, fail = false) =>
    async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5 - i));
      order.push(i);
      running--;
      if (fail) throw new Error(`task ${i}`);
      return i;
    };
  const results = await Promise.allSettled([
    serial.run(task(0)),
    serial.run(task(1, true)),
    serial.run(task(2)),
    serial.run(task(3)),
  ]);
  assert.equal(most, 1);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.deepEqual(
    results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [0, 'task 1', 2, 3],
  );
});
