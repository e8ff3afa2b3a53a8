import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { userHash } from '../../src/store/user-hash.ts';
import {
  generateEvents,
  interleave,
  metricValue,
  produce,
  spawnProcessor,
  startTestPostgres,
  testProducer,
  toMessage,
  waitFor,
  waitStoredToEnd,
} from '../helpers/kafka-process.ts';
import { createTopic, startTestKafka } from '../helpers/kafka.ts';
import type { OracleEvent } from '../helpers/oracle.ts';
import { assertExactlyOnce } from '../helpers/stored-state.ts';
import { userTraces } from '../helpers/twin-projects.ts';

const PARTITIONS = 6;
/** The deployment's TALLY_USER_HASH_KEY: the processor checks it against the stored fingerprint. */
const KEY = 'kafka-test-user-hash-key-0123456789abcdef';
const GONE = 'user-gone';

/** `n` events of the deleted user, over the same last hours as generateEvents'. */
function deletedUserEvents(n: number): OracleEvent[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    event_id: `gone-${randomUUID()}-${i}`,
    type: i % 3 === 0 ? 'click' : 'page_view',
    user_id: GONE,
    ts: now - 60_000 - i * 30_000,
    page_url: `/p/${i % 7}`,
  }));
}

test(
  'tally process drops a tombstoned user’s events, new and replayed, counts them, and stores the others exactly',
  { timeout: 5 * 60_000 },
  async (t) => {
    const broker = await startTestKafka(t);
    if (!broker) return;
    const db = await startTestPostgres(t);
    // What a deletion leaves (migration 022): the tombstone, by the deployment's key.
    await db.pool.query('INSERT INTO tally.user_tombstones (project, user_hash) VALUES ($1, $2)', [
      'default',
      userHash(Buffer.from(KEY), GONE),
    ]);
    const topic = `deleted-${randomUUID()}`;
    const groupId = `g-${randomUUID()}`;
    await createTopic(broker.bootstrap, topic, PARTITIONS);
    const processor = await spawnProcessor(t, {
      bootstrap: broker.bootstrap,
      topic,
      groupId,
      databaseUrl: db.connectionString,
      extra: { TALLY_USER_HASH_KEY: KEY },
    });
    const producer = testProducer(t, broker.bootstrap);
    const allStored = () => waitStoredToEnd(db.pool, broker.bootstrap, groupId, topic);
    const tombstoneDropped = async () =>
      Number(
        (
          await db.pool.query<{ n: string }>(
            'SELECT dropped_events AS n FROM tally.user_tombstones WHERE project = $1',
            ['default'],
          )
        ).rows[0].n,
      );

    const { oracle, messages } = generateEvents(4000, 31, 0.05);
    const gone = deletedUserEvents(300).map(toMessage);
    // Spread through the others', so the deleted user's messages share batches with them.
    await produce(producer, topic, interleave(messages, gone, 32), { chunk: 500 });
    await allStored();
    await assertExactlyOnce(db.pool, oracle);
    assert.equal(await tombstoneDropped(), gone.length, 'tombstone dropped_events');
    await waitFor(
      'the dropped events counted in the metric',
      async () =>
        (await metricValue(processor.url, 'tally_events_dropped_deleted_user_total')) === gone.length,
      30_000,
    );

    // A replay of the user's messages (Kafka re-produce, as `tally replay` does from the DLQ).
    await produce(producer, topic, gone, { chunk: 100 });
    await allStored();
    await assertExactlyOnce(db.pool, oracle);
    assert.equal(await tombstoneDropped(), 2 * gone.length, 'the replay is dropped and counted');
    assert.deepEqual(
      await userTraces(db.pool, 'default', GONE),
      { numbers: 0, visits: 0, feed: 0 },
      'no trace of the user',
    );
  },
);
