import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  interleave,
  metricValue,
  produce,
  spawnProcessor,
  testProducer,
  waitFor,
  type KafkaMessage,
} from '../helpers/kafka-process.ts';
import {
  assertTwins,
  deleteFromA,
  droppedInA,
  holdProjectLock,
  messagesOf,
  startKafkaTwins,
  twinTraffic,
} from '../helpers/kafka-twins.ts';
import { prng } from '../helpers/oracle.ts';
import { projectState, userTraces } from '../helpers/twin-projects.ts';

/**
 * Issue 22 in Kafka mode, the twin-project oracle (test/store/user-deletion.integration.test.ts
 * is the embedded one): user X is deleted from A while its events are still being sent, and its
 * old messages are replayed into the topic afterwards; A must then hold exactly what B, sent the
 * same traffic without X, does, and every event of X after its tombstone is dropped and counted.
 */

const SEED = 2210;

test(
  'twin projects through Kafka: X deleted from A while its events still arrive, then replayed: A equals B, X’s later events dropped and counted',
  { timeout: 180_000 },
  async (t) => {
    const twins = await startKafkaTwins(t);
    if (!twins) return;
    const processor = await spawnProcessor(t, twins.processor);
    const traffic = twinTraffic(SEED, 30);
    const random = prng(SEED);
    const x = traffic.own;
    assert.ok(x.length >= 15, `X has events to spread (${x.length})`);
    // X's first 40 % come with the first wave; 30 % while the deletion runs, the rest after it.
    const firstOfX = Math.floor(x.length * 0.4);

    await Promise.all([
      twins.send('A', interleave(traffic.bulk, x.slice(0, firstOfX), SEED), random),
      twins.send('B', traffic.bulk, random),
    ]);
    await twins.drained();
    assert.equal((await userTraces(twins.db.pool, 'A', traffic.deleted)).numbers, 1, 'X stored in A');

    // The deletion, stretched (holdProjectLock): it waits for the project's lock while the late
    // wave goes to both projects and more of X's events come, one a request; the batches of A
    // consumed meanwhile wait behind it, and must drop X's events once it has committed.
    const lock = await holdProjectLock(t, twins.db.connectionString, 'A');
    const deletion = deleteFromA(twins, traffic.deleted);
    await waitFor(
      'the deletion waiting for the project lock',
      async () => (await lock.waiting('ExclusiveLock')) === 1,
    );
    const secondOfX = Math.floor(x.length * 0.7);
    // One of X's first, alone: the first batch to wait behind the deletion holds it.
    await twins.send('A', [x[firstOfX]], random);
    await Promise.all([
      (async () => {
        for (const body of x.slice(firstOfX + 1, secondOfX)) await twins.send('A', [body], random);
      })(),
      twins.send('A', traffic.late, random, 20),
      twins.send('B', traffic.late, random, 20),
    ]);
    await waitFor(
      'a batch of A waiting behind the deletion',
      async () => (await lock.waiting('ShareLock')) > 0,
    );
    await lock.release();
    const { removed } = await deletion;
    // And after it.
    await twins.send('A', x.slice(secondOfX), random, 3);
    await twins.drained();

    const dropped = await droppedInA(twins);
    t.diagnostic(`X: ${x.length} events; removed ${removed}, dropped ${dropped}`);
    assert.equal(removed, firstOfX, 'the deletion removed X’s events stored before it');
    assert.equal(
      dropped,
      x.length - firstOfX,
      'every event of X sent during and after the deletion dropped, once',
    );
    const metricIs = (n: number) => async () =>
      (await metricValue(processor.url, 'tally_events_dropped_deleted_user_total')) === n;
    await waitFor(`the metric to count the ${dropped} dropped events`, metricIs(dropped), 30_000);
    await assertTwins(twins, traffic, 'after the deletion');
    assert.deepEqual(
      await userTraces(twins.db.pool, 'A', traffic.deleted),
      // The one change-feed row naming X is the deletion's own (read models retire X by it).
      { numbers: 0, visits: 0, feed: 1 },
      'no trace of X',
    );

    // A replay of X's old messages, as they are in the topic.
    const old = await messagesOf(twins, traffic.deleted);
    assert.equal(old.length, x.length, 'ingest wrote each event of X once');
    const before = await projectState(twins.db.pool, 'A');
    const replay: KafkaMessage[] = old.map((m) => ({
      topic: '',
      key: m.key,
      value: m.value,
      headers: new Map([...m.headers].map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
    }));
    await produce(testProducer(t, twins.broker.bootstrap), twins.processor.topic, replay, { chunk: 7 });
    await twins.drained();
    assert.equal(await droppedInA(twins), dropped + x.length, 'the replay dropped and counted');
    await waitFor('the metric to count the replay', metricIs(dropped + x.length), 30_000);
    assert.deepEqual(await projectState(twins.db.pool, 'A'), before, 'the replay changed nothing');
    await assertTwins(twins, traffic, 'after the replay');
  },
);
