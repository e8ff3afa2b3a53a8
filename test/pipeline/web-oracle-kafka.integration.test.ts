import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Admin } from '@platformatic/kafka';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import {
  partitionsStoredUpTo,
  spawnIngest,
  spawnProcessor,
  startTestPostgres,
  storedCountProbe,
  waitFor,
} from '../helpers/kafka-process.ts';
import { endOffsets, startTestKafka } from '../helpers/kafka.ts';
import { prng } from '../helpers/oracle.ts';
import {
  assertBreakdown,
  assertProduct,
  assertSessions,
  assertSummary,
  question,
  sendBeacons,
  sendEvents,
  WebOracle,
} from '../helpers/web-oracle.ts';
import { generateTraffic, MINUTE } from '../helpers/web-traffic.ts';

/**
 * Issue 20's numbers end to end in Kafka mode: the generated traffic of the embedded suite, at a
 * smaller size, goes over HTTP to two `tally ingest` instances, through a real broker, into
 * `tally process`, and is asked of `tally query`. The late events (merging visits, inserting one
 * between two, moving a start) and re-sends come once the first wave is stored, so they reach
 * the processor in later batches; every answer and tally.sessions must then equal the oracle.
 */

const PARTITIONS = 6;

test(
  'web analytics through Kafka equal the oracle, late merges in later batches',
  { timeout: 240_000 },
  async (t) => {
    const broker = await startTestKafka(t);
    if (!broker) return;
    const db = await startTestPostgres(t);
    const topic = `web-${randomUUID()}`;
    const groupId = `g-${randomUUID()}`;
    const admin = new Admin({ clientId: 'test-admin', bootstrapBrokers: [broker.bootstrap] });
    try {
      await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 });
    } finally {
      await admin.close();
    }
    const [ingestA, ingestB] = await Promise.all([
      spawnIngest(t, broker.bootstrap, topic),
      spawnIngest(t, broker.bootstrap, topic),
    ]);
    await spawnProcessor(t, {
      bootstrap: broker.bootstrap,
      topic,
      groupId,
      databaseUrl: db.connectionString,
      extra: { TALLY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' },
    });
    const queryPort = await findFreePort();
    const query = await spawnTally(
      ['query'],
      { DATABASE_URL: db.connectionString, TALLY_QUERY_PORT: String(queryPort), TALLY_LOG_LEVEL: 'warn' },
      queryPort,
    );
    t.after(async () => {
      if (query.child.exitCode === null && query.child.signalCode === null) {
        query.child.kill('SIGTERM');
        await query.exited;
      }
    });

    const now = Date.now();
    const traffic = generateTraffic({ seed: 21, users: 40, now, collectUsers: 3 });
    assert.ok(traffic.kinds.merge > 0 && traffic.collect.length > 0, JSON.stringify(traffic.kinds));
    const random = prng(5);
    const ingests = [ingestA.url, ingestB.url];
    // Every message of the topic is stored (duplicates included) once the group's positions reach its ends.
    const drained = async (events: number) => {
      await waitFor('every event stored', storedCountProbe(db.pool, events), 90_000);
      const ends = await endOffsets(broker.bootstrap, topic);
      await waitFor(
        'the processor past every message',
        async () => (await partitionsStoredUpTo(db.pool, groupId, topic, ends)) === ends.length,
        90_000,
      );
    };

    await Promise.all([
      sendEvents(ingests, traffic.bulk, random, { maxBatch: 60, concurrency: 4 }),
      sendBeacons(ingestB.url, traffic.collect, 2),
    ]);
    const firstWave = new WebOracle(traffic.all.filter((g) => !g.late));
    await drained(firstWave.events.length);
    const from = Math.floor((now - 9 * 60 * MINUTE) / MINUTE) * MINUTE;
    const to = Math.ceil((now + MINUTE) / MINUTE) * MINUTE;
    const all = question(from, to);
    await assertSessions(db.pool, firstWave);
    await assertSummary(query.url, firstWave, all, 'first wave');
    await assertBreakdown(query.url, firstWave, all, 'channel');

    // Second wave, in later batches: the stored visits merge, grow and get new neighbours.
    await sendEvents(ingests, traffic.late, random, { maxBatch: 20, concurrency: 4 });
    const oracle = new WebOracle(traffic.all);
    assert.ok(oracle.mergedFrom(firstWave) > 0, 'late events merged stored visits');
    await drained(oracle.events.length);
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM tally.events');
    assert.equal(rows[0].n, traffic.all.length, 'each event stored once');
    await assertSessions(db.pool, oracle);

    // The same questions again: an answer cached from the first wave must not come back.
    await assertSummary(query.url, oracle, all, 'no filter');
    await assertBreakdown(query.url, oracle, all, 'channel');
    await assertSummary(query.url, oracle, question(from, to, [], 'include'), 'bots=include');
    await assertSummary(query.url, oracle, question(from, to, [], 'only'), 'bots=only');
    const filters = [
      { dim: 'device', op: '!=' as const, values: ['desktop'] },
      { dim: 'page', op: '~=' as const, values: ['blog', 'PRICING'] },
    ];
    await assertSummary(query.url, oracle, question(from, to, filters), 'filtered');
    await assertBreakdown(query.url, oracle, question(from, to, filters), 'entry_page');
    // Issue 21: funnels, retention and paths of the same traffic.
    await assertProduct(query.url, oracle, from, to);
  },
);
