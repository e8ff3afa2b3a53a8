import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { Admin, ConfigResourceTypes, compatibilityPartitioner } from '@platformatic/kafka';
import type { KafkaCluster, KafkaNode } from '../../scripts/kafka/cluster.ts';
import { encodeEvent } from '../../src/kafka/codec.ts';
import { dlqTopic } from '../../src/kafka/dead-letters.ts';
import type { ChildTally } from '../helpers/child-tally.ts';
import { IngestLoad } from '../helpers/ingest-load.ts';
import {
  metricValue,
  spawnIngest,
  spawnProcessor,
  startTestPostgres,
  storedCountProbe,
  waitFor,
  workerPids,
  type TestPostgres,
} from '../helpers/kafka-process.ts';
import { readTopic, startTestKafkaCluster } from '../helpers/kafka.ts';
import { assertExactlyOnce } from '../helpers/stored-state.ts';

/**
 * Issue #23: Tally against a real 3-node KRaft cluster (replication 3, min.insync.replicas 2),
 * with `tally ingest` (acks=all) under continuous load and `tally process` storing into
 * PostgreSQL. The faults run one after another on one cluster, topic and database; after each,
 * the load is drained and the oracle checked over everything sent so far: every event answered
 * 2xx is stored once, nothing else is. TALLY_LONG_TESTS=1 sends ten times the events per fault.
 */
const LONG = process.env.TALLY_LONG_TESTS === '1';
const EVENTS_PER_FAULT = LONG ? 50_000 : 5_000;
const PARTITIONS = 6;
const ACK_TIMEOUT_MS = 3000;
const CONCURRENCY = 6;
/** A SIGSTOPped broker stays frozen at least this long: past the processor's 3 s consumer
 * session and the broker's session with the controller, so the cluster must act without it. */
const FREEZE_MS = 12_000;
/** How long the processor may take to store everything once a fault is over: longer means stuck. */
const SETTLE_MS = 90_000;

interface Setup {
  cluster: KafkaCluster;
  db: TestPostgres;
  topic: string;
  ingest: ChildTally;
  processor: ChildTally;
  worker: number;
  load: IngestLoad;
}

/** A fresh admin client on `bootstraps` (default every node), closed after `use`. */
async function withAdmin<T>(
  cluster: KafkaCluster,
  use: (admin: Admin) => Promise<T>,
  bootstraps = cluster.bootstrap.split(','),
): Promise<T> {
  const admin = new Admin({
    clientId: 'test-cluster-probe',
    bootstrapBrokers: bootstraps,
    retries: 1,
    connectTimeout: 1_000,
    timeout: 3_000,
  });
  try {
    return await use(admin);
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** True when every partition of `topics` has all three replicas in sync. */
async function fullyReplicated(cluster: KafkaCluster, topics: string[]): Promise<boolean> {
  const metadata = await withAdmin(cluster, (a) => a.metadata({ topics, forceUpdate: true }));
  return topics.every((name) => {
    const partitions = metadata.topics.get(name)?.partitions ?? [];
    return partitions.length > 0 && partitions.every((p) => p.isr.length === 3);
  });
}

/** Thaws frozen nodes and restarts dead ones. */
async function everyNodeUp(cluster: KafkaCluster): Promise<void> {
  for (const node of cluster.nodes) {
    if (node.running) node.resume();
    else await node.restart();
  }
}

/**
 * Before each fault: every node running (none left frozen or down by a failed fault before it)
 * and every replica of the events topic and its .dlq in sync, so each fault starts from the same
 * cluster. (The client's metadata leaves internal topics such as __consumer_offsets out.)
 */
async function healthy(setup: Setup): Promise<void> {
  await everyNodeUp(setup.cluster);
  await waitFor(
    'every replica in sync',
    () => fullyReplicated(setup.cluster, [setup.topic, dlqTopic(setup.topic)]),
    120_000,
    500,
  );
}

/** The leader of `partition` once the live nodes (the harness asks no frozen one) say it is another than `not`. */
async function newLeader(cluster: KafkaCluster, topic: string, partition: number, not: number) {
  let leader = -1;
  await waitFor(
    `a new leader of ${topic}/${partition} in place of node ${not}`,
    async () => {
      leader = await cluster.leaderOf(topic, partition).catch(() => -1);
      return leader > 0 && leader !== not;
    },
    60_000,
    250,
  );
  return leader;
}

/** The partitions of `topic` that `node` leads, in its own metadata. */
async function partitionsLedBy(cluster: KafkaCluster, node: KafkaNode, topic: string): Promise<number[]> {
  const metadata = await withAdmin(cluster, (a) => a.metadata({ topics: [topic], forceUpdate: true }), [
    node.bootstrap,
  ]);
  const partitions = metadata.topics.get(topic)?.partitions ?? [];
  return partitions.flatMap((p, i) => (p.leader === node.id ? [i] : []));
}

/** The partition of `topic` that `tally ingest` writes `user`'s events to (its key and partitioner). */
function partitionOf(user: string): number {
  const { key } = encodeEvent({
    project: 'default',
    eventId: user,
    type: 'probe',
    userId: user,
    ts: 0,
    receivedAt: 0,
    pageUrl: null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
  });
  const bytes = Buffer.from(key);
  return compatibilityPartitioner({ topic: '', key: bytes }, bytes) % PARTITIONS;
}

/** `n` user ids whose events go to one of `partitions`. */
function usersOnPartitions(partitions: readonly number[], n: number): string[] {
  const users: string[] = [];
  for (let i = 0; users.length < n; i++) {
    if (partitions.includes(partitionOf(`probe-${i}`))) users.push(`probe-${i}`);
  }
  return users;
}

/** Waits for `n` answers 202 to requests sent at or after `since`: ingest serves through the fault. */
async function acceptsSince(load: IngestLoad, since: number, what: string, n = 2 * CONCURRENCY) {
  await waitFor(
    `${n} events requests answered 202 ${what}`,
    () => load.answersBetween(since).filter((a) => a.status === 202).length >= n,
    60_000,
    100,
  );
}

/**
 * Runs `fault` while the load runs (after a third of this fault's events are acknowledged), then
 * sends the rest, drains the clients and checks the oracle over every event sent so far.
 */
async function underLoad(t: TestContext, setup: Setup, fault: () => Promise<void>): Promise<void> {
  const { load, db } = setup;
  await healthy(setup);
  const before = load.acked.length;
  const startedAt = Date.now();
  let faultAt: number;
  let faultTook: number;
  load.start();
  try {
    await waitFor('load under way', () => load.acked.length >= before + EVENTS_PER_FAULT / 3, 60_000, 50);
    faultAt = Date.now();
    await fault();
    faultTook = Date.now() - faultAt;
    await waitFor(
      'this fault’s events acknowledged',
      () => load.acked.length >= before + EVENTS_PER_FAULT,
      120_000,
      100,
    );
  } finally {
    // A fault that failed half-way may have left nodes down: the clients' requests need them.
    await everyNodeUp(setup.cluster);
    await load.stop();
  }
  t.diagnostic(
    `${load.acked.length - before} events acknowledged; the fault took ${faultTook} ms; answers ` +
      `during it ${JSON.stringify(load.statusCounts(load.answersBetween(faultAt, faultAt + faultTook)))}, ` +
      `in all ${JSON.stringify(load.statusCounts(load.answersBetween(startedAt)))}`,
  );
  assert.deepEqual(load.unexpectedAnswers(), [], 'ingest answered only 202 or 503 with Retry-After');
  await waitFor(
    `all ${load.acked.length} acknowledged events stored`,
    storedCountProbe(db.pool, load.acked.length),
    SETTLE_MS,
    250,
  );
  await assertExactlyOnce(db.pool, load.acked);
  assert.deepEqual(
    await workerPids(setup.processor.child.pid ?? 0),
    [setup.worker],
    'the processor’s worker never crashed',
  );
}

async function setUp(t: TestContext): Promise<Setup | undefined> {
  const cluster = await startTestKafkaCluster(t, 3);
  if (cluster === undefined) return undefined;
  const db = await startTestPostgres(t);
  const topic = `cluster-faults-${randomUUID()}`;
  // The processor creates the topic and its .dlq with the configured replication.
  const processor = await spawnProcessor(t, {
    bootstrap: cluster.bootstrap,
    topic,
    groupId: `g-${randomUUID()}`,
    databaseUrl: db.connectionString,
    extra: {
      TALLY_KAFKA_PARTITIONS: String(PARTITIONS),
      TALLY_KAFKA_REPLICATION_FACTOR: '3',
      TALLY_KAFKA_MIN_INSYNC_REPLICAS: '2',
      TALLY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    },
  });
  let worker = 0;
  await waitFor('the processor worker', async () => {
    const pids = await workerPids(processor.child.pid ?? 0);
    worker = pids[0] ?? 0;
    return pids.length === 1;
  });
  await waitFor('the topics created and in sync', () => fullyReplicated(cluster, [topic, dlqTopic(topic)]));
  const ingest = await spawnIngest(t, cluster.bootstrap, topic, {
    TALLY_KAFKA_ACK_TIMEOUT_MS: String(ACK_TIMEOUT_MS),
  });
  const load = new IngestLoad({
    url: ingest.url,
    seed: 23,
    concurrency: CONCURRENCY,
    eventsPerRequest: 10,
    retryDelayMs: 200,
    pauseMs: 100,
  });
  return { cluster, db, topic, ingest, processor, worker, load };
}

test(
  'a 3-broker KRaft cluster under faults: ingest answers 202 only for durable events, each stored once',
  { timeout: (LONG ? 40 : 12) * 60_000 },
  async (t) => {
    const setup = await setUp(t);
    if (setup === undefined) return;
    const { cluster, topic, load } = setup;

    await t.test('the topic and its .dlq: 3 replicas, min.insync.replicas 2', async () => {
      await withAdmin(cluster, async (admin) => {
        const metadata = await admin.metadata({ topics: [topic, dlqTopic(topic)] });
        for (const [name, info] of metadata.topics) {
          assert.equal(info.partitions.length, PARTITIONS, name);
          for (const p of info.partitions) assert.equal(p.replicas.length, 3, `${name}: replicas`);
        }
        const described = await admin.describeConfigs({
          resources: [topic, dlqTopic(topic)].map((resourceName) => ({
            resourceType: ConfigResourceTypes.TOPIC,
            resourceName,
            configurationKeys: ['min.insync.replicas'],
          })),
        });
        for (const d of described)
          assert.equal(d.configs.find((c) => c.name === 'min.insync.replicas')?.value, '2', d.resourceName);
      });
    });

    await t.test('ingest writes each user to the partition the probes of fault 3 expect', async () => {
      const users = Array.from({ length: 4 * PARTITIONS }, (_, i) => `probe-${i}`);
      await load.sendUntilAccepted(
        load.events(users.length, (i) => users[i]),
        120_000,
      );
      const written = await readTopic(cluster.nodes[0].bootstrap, topic);
      const seen = new Set<string>();
      for (const m of written) {
        const user = m.key!.toString().split('\u001f')[1];
        assert.equal(m.partition, partitionOf(user), user);
        seen.add(user);
      }
      assert.equal(seen.size, users.length);
      assert.equal(new Set(written.map((m) => m.partition)).size, PARTITIONS, 'every partition has one');
    });

    await t.test('1: kill -9 the leader of a partition under load, then restart it', async (t) => {
      await underLoad(t, setup, async () => {
        // A partition led by a node that is not the active controller: fault 2 covers that one.
        const controller = await cluster.activeController();
        let partition = -1;
        let victim = -1;
        for (let p = 0; p < PARTITIONS && partition < 0; p++) {
          const leader = await cluster.leaderOf(topic, p);
          if (leader !== controller) [partition, victim] = [p, leader];
        }
        assert.ok(partition >= 0, 'some partition is led by a node other than the controller');
        await cluster.node(victim).kill();
        await newLeader(cluster, topic, partition, victim);
        await acceptsSince(load, Date.now(), `with node ${victim} down`);
        await cluster.node(victim).restart();
      });
    });

    await t.test('2: kill -9 the active KRaft controller under load, then restart it', async (t) => {
      await underLoad(t, setup, async () => {
        const victim = await cluster.activeController();
        await cluster.node(victim).kill();
        await waitFor(
          'a new active controller',
          async () => {
            const now = await cluster.activeController();
            return now > 0 && now !== victim;
          },
          60_000,
          250,
        );
        await acceptsSince(load, Date.now(), `with controller ${victim} down`);
        await cluster.node(victim).restart();
      });
    });

    await t.test(
      '3: two brokers killed: 503 with Retry-After and never 2xx until they are back, then 202',
      async (t) => {
        await underLoad(t, setup, async () => {
          // The leader of partition 0 survives, so some partitions still have a leader to write to.
          const survivor = cluster.node(await cluster.leaderOf(topic, 0));
          const victims = cluster.nodes.filter((n) => n !== survivor);
          await Promise.all(victims.map((n) => n.kill()));
          const downFrom = Date.now();
          await waitFor(
            '503s from ingest with two brokers down',
            () =>
              Date.now() - downFrom >= 2 * ACK_TIMEOUT_MS &&
              load.answersBetween(downFrom).filter((a) => a.status === 503).length >= 2 * CONCURRENCY,
            60_000,
            100,
          );
          // TRICKY: ingest coalesces concurrent requests into one produce, which fails as a whole
          // when any of its partitions is leaderless. Alone, events whose partitions the survivor
          // leads would reach a live leader: they show whether ingest waits for min.insync.replicas
          // (acks=all) or takes the leader's word for it.
          await load.pause();
          const led = await partitionsLedBy(cluster, survivor, topic);
          assert.ok(led.length > 0, `node ${survivor.id} leads some partitions`);
          const users = usersOnPartitions(led, 2 * CONCURRENCY);
          const probes = users.map((user) => load.events(1, () => user));
          const probeAnswers = await Promise.all(probes.map((events) => load.postOnce(events)));
          const downTo = Date.now();
          const during = load.answersBetween(downFrom, downTo);
          assert.deepEqual(
            load.statusCounts(during),
            { 503: during.length },
            'nothing durable with one broker: every request answered 503',
          );
          assert.deepEqual(load.statusCounts(probeAnswers), { 503: probes.length }, 'the probes too');
          for (const a of during) assert.ok(Number(a.retryAfter) > 0, `Retry-After ${a.retryAfter}`);
          // A refusal comes within the ack timeout, after at most one produce queued before it
          // (ingest has one in flight at a time): a hang would show here.
          const slowest = Math.max(...during.map((a) => a.answeredAt - a.sentAt));
          assert.ok(slowest < 2 * ACK_TIMEOUT_MS + 2000, `slowest 503 took ${slowest} ms`);

          await Promise.all(victims.map((n) => n.restart()));
          const backAt = Date.now();
          load.resume();
          await acceptsSince(load, backAt, 'once the brokers are back', 1);
          // The probes' clients send them again, as the 503 asked.
          await Promise.all(probes.map((events) => load.sendUntilAccepted(events, 120_000)));
        });
      },
    );

    await t.test(
      '4: one broker frozen (SIGSTOP) past the session timeouts, then thawed (a network partition)',
      async (t) => {
        await underLoad(t, setup, async () => {
          const victim = await cluster.leaderOf(topic, 0);
          const node = cluster.node(victim);
          t.diagnostic(`node ${victim} frozen`);
          node.pause();
          const frozenAt = Date.now();
          try {
            await newLeader(cluster, topic, 0, victim);
            await acceptsSince(load, Date.now(), `with node ${victim} frozen`);
            await waitFor('the freeze to last', () => Date.now() - frozenAt >= FREEZE_MS, FREEZE_MS + 1000);
          } finally {
            node.resume();
          }
        });
      },
    );

    await t.test('after the faults: nothing left waiting on Kafka; the processor caught up', async () => {
      await waitFor(
        'no bytes in flight in ingest',
        async () => (await metricValue(setup.ingest.url, 'tally_ingest_inflight_bytes')) === 0,
        30_000,
      );
      await waitFor(
        'the processor ready',
        async () => (await fetch(`${setup.processor.url}/ready`)).status === 200,
        30_000,
      );
      t.diagnostic(
        `${load.acked.length} events acknowledged; answers ${JSON.stringify(load.statusCounts())}`,
      );
    });
  },
);
