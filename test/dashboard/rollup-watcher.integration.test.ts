import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { LiveFeed } from '../../src/dashboard/live-feed.ts';
import { RollupWatcher } from '../../src/dashboard/rollup-watcher.ts';
import { postJson, startTestTally } from '../helpers/embedded-tally.ts';

test('RollupWatcher turns commits seen in PostgreSQL into live updates (query-only processes)', async (t) => {
  const tally = await startTestTally(t);
  const live = new LiveFeed();
  // A long interval: the test drives the polls itself.
  const watcher = new RollupWatcher({
    pool: tally.database.pool,
    live,
    logger: pino({ level: 'silent' }),
    intervalMs: 3_600_000,
  });
  const unwatch = watcher.watch('default');
  t.after(unwatch);
  await watcher.poll(); // baseline: nothing yet

  const send = (n: number, tag: string) =>
    postJson(
      `${tally.url}/v1/events`,
      Array.from({ length: n }, (_, i) => ({ event_id: `${tag}-${i}`, type: 'click', user_id: 'u' })),
    );
  assert.equal((await send(3, 'a')).status, 202);
  await watcher.poll();
  let s = live.snapshot('default');
  assert.equal(s.committed, 3);
  assert.equal(s.commits, 1);
  assert.ok(s.rate > 0);

  await watcher.poll(); // nothing new: no new commit reported
  assert.equal(live.snapshot('default').commits, 1);

  assert.equal((await send(2, 'b')).status, 202);
  assert.equal((await send(2, 'a')).body.duplicates, 2, 'duplicates change no rollup');
  await watcher.poll();
  s = live.snapshot('default');
  assert.equal(s.committed, 5);
  assert.equal(s.commits, 2);
  assert.equal(live.snapshot('other').commits, 0);
});
