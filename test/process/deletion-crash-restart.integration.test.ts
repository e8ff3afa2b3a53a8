import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  crashProcessor,
  interleave,
  metricValue,
  spawnProcessor,
  waitFor,
} from '../helpers/kafka-process.ts';
import {
  assertTwins,
  deleteFromA,
  droppedInA,
  holdProjectLock,
  startKafkaTwins,
  twinTraffic,
} from '../helpers/kafka-twins.ts';
import { prng } from '../helpers/oracle.ts';
import { userTraces } from '../helpers/twin-projects.ts';

/**
 * Issue 22: a deletion during a processor crash and restart, in Kafka mode. The twins' first wave
 * (kafka-twins.ts) is stored; user X's deletion from A is stretched (holdProjectLock) so that
 * `tally process`, under the late wave's load, has a batch of A waiting behind it; then the
 * processor is killed (-9, workers too), the deletion completes, and a new processor re-consumes
 * the uncommitted tail, X's events in it. Exactly X's events stored before the deletion are the
 * ones it removed; every later one is dropped once; A equals B.
 */

const SEED = 2220;
/** Requests of up to this many events to A and to B, with a pause between: the load. */
const SLICE = 40;

test(
  'a deletion while tally process is killed mid-batch and restarted: the re-consumed tail drops X’s events, A equals B, the others counted once',
  { timeout: 180_000 },
  async (t) => {
    const twins = await startKafkaTwins(t);
    if (!twins) return;
    const { db, processor: env } = twins;
    const first = await spawnProcessor(t, env);
    const traffic = twinTraffic(SEED, 40);
    const random = prng(SEED);
    const x = traffic.own;
    const firstOfX = Math.floor(x.length * 0.4);
    await Promise.all([
      twins.send('A', interleave(traffic.bulk, x.slice(0, firstOfX), SEED), random),
      twins.send('B', traffic.bulk, random),
    ]);
    await twins.drained();

    const lock = await holdProjectLock(t, db.connectionString, 'A');
    const deletion = deleteFromA(twins, traffic.deleted);
    await waitFor(
      'the deletion waiting for the project lock',
      async () => (await lock.waiting('ExclusiveLock')) === 1,
    );
    // The load: the late wave to both, the rest of X's events among A's. One of X's comes first,
    // so the batch that waits behind the deletion, and dies with the processor, holds it.
    const toA = [x[firstOfX], ...interleave(traffic.late, x.slice(firstOfX + 1), SEED + 1)];
    const load = (async () => {
      for (let i = 0; i < toA.length; i += SLICE) {
        await Promise.all([
          twins.send('A', toA.slice(i, i + SLICE), random),
          twins.send('B', traffic.late.slice(i, i + SLICE), random),
        ]);
        await sleep(100);
      }
    })();
    await waitFor(
      'a batch of A waiting behind the deletion',
      async () => (await lock.waiting('ShareLock')) > 0,
    );
    await crashProcessor(first);
    await lock.release();
    const { removed } = await deletion;
    const second = await spawnProcessor(t, env);
    await load;
    await twins.drained();

    const dropped = await droppedInA(twins);
    t.diagnostic(
      `X: ${x.length} events, ${firstOfX} stored before the deletion; removed ${removed}, dropped ${dropped}`,
    );
    assert.equal(removed, firstOfX, 'the deletion removed the events of X stored before it');
    // The killed processor's batch, drops included, was never committed: each is counted once.
    assert.equal(dropped, x.length - firstOfX, 'every later event of X dropped, once');
    await waitFor(
      'the restarted processor’s metric to count the dropped events',
      async () => (await metricValue(second.url, 'tally_events_dropped_deleted_user_total')) === dropped,
      30_000,
    );
    await assertTwins(twins, traffic, 'after the crash, the deletion and the restart');
    assert.deepEqual(
      await userTraces(db.pool, 'A', traffic.deleted),
      // The one change-feed row naming X is the deletion's own (read models retire X by it).
      { numbers: 0, visits: 0, feed: 1 },
      'no trace of X',
    );
  },
);
