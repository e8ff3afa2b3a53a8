import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Admin, ConfigResourceTypes } from '@platformatic/kafka';
import { dlqTopic } from '../../src/kafka/dead-letters.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { startTestKafkaCluster } from '../helpers/kafka.ts';
import { waitFor } from '../helpers/poll.ts';

/** The three-node harness itself: replication as configured, and the node the tests mean to kill is the one that dies. */
test(
  'a three-node KRaft cluster: replicated topics, leaders and the controller move when their node dies',
  { timeout: 6 * 60_000 },
  async (t) => {
    const cluster = await startTestKafkaCluster(t, 3);
    if (cluster === undefined) return;
    const admin = new Admin({
      clientId: 'cluster-test',
      bootstrapBrokers: [...cluster.brokers],
      retries: 10,
    });
    t.after(() => admin.close());
    const topic = `cluster-${randomUUID()}`;

    await t.test('every node is registered; one of them leads the metadata quorum', async () => {
      const metadata = await admin.metadata({ topics: [] });
      assert.deepEqual([...metadata.brokers.keys()].sort(), [1, 2, 3]);
      assert.ok([1, 2, 3].includes(await cluster.activeController()));
    });

    /** Copies of each partition of `topics` and their min.insync.replicas, as the cluster says. */
    const replication = async (topics: string[]) => {
      const metadata = await admin.metadata({ topics, forceUpdate: true });
      const described = await admin.describeConfigs({
        resources: topics.map((name) => ({
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: name,
          configurationKeys: ['min.insync.replicas'],
        })),
      });
      return topics.map((name) => ({
        copies: metadata.topics.get(name)?.partitions.map((p) => p.replicas.length),
        minInsync: described
          .find((d) => d.resourceName === name)
          ?.configs.find((c) => c.name === 'min.insync.replicas')?.value,
      }));
    };

    await t.test('Tally creates its topics with the replication asked for, the .dlq too', async () => {
      await ensureTopics({
        brokers: cluster.brokers,
        topics: [topic],
        partitions: 3,
        // Not the cluster's defaults (3 and 2), so the test sees Tally's settings applied.
        replicationFactor: 2,
        minInsyncReplicas: 1,
      });
      assert.deepEqual(await replication([topic, dlqTopic(topic)]), [
        { copies: [2, 2, 2], minInsync: '1' },
        { copies: [2, 2, 2], minInsync: '1' },
      ]);
    });

    await t.test(
      "without Tally's settings a topic takes the cluster's: three copies, two in sync to write",
      async () => {
        const plain = `plain-${randomUUID()}`;
        await ensureTopics({ brokers: cluster.brokers, topics: [plain], partitions: 1 });
        assert.deepEqual(await replication([plain]), [{ copies: [3], minInsync: '2' }]);
      },
    );

    await t.test(
      'killing the leader of a partition moves it; the restarted node catches up into the ISR',
      async () => {
        const topic = `leaders-${randomUUID()}`;
        await ensureTopics({ brokers: cluster.brokers, topics: [topic], partitions: 1 });
        let leader = -1;
        await waitFor('a leader of the new topic', async () => {
          leader = await cluster.leaderOf(topic, 0).catch(() => -1);
          return leader > 0;
        });
        await cluster.node(leader).kill();
        assert.equal(cluster.node(leader).running, false);
        await waitFor('a new leader of partition 0', async () => {
          const now = await cluster.leaderOf(topic, 0).catch(() => -1);
          return now > 0 && now !== leader;
        });
        await cluster.node(leader).restart();
        await waitFor('all three copies in sync again', async () => {
          const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
          return metadata.topics.get(topic)?.partitions[0].isr.length === 3;
        });
      },
    );

    await t.test('killing the active controller elects another one', async () => {
      const controller = await cluster.activeController();
      await cluster.node(controller).kill();
      await waitFor('another controller', async () => {
        const now = await cluster.activeController().catch(() => -1);
        return now > 0 && now !== controller;
      });
      await cluster.node(controller).restart();
      const metadata = await admin.metadata({ topics: [], forceUpdate: true });
      assert.ok(metadata.brokers.has(controller), 'the restarted node is registered again');
    });

    await t.test('a paused node is thawed by resume and by stop', async () => {
      const node = cluster.nodes[2];
      node.pause();
      assert.equal(node.running, true);
      node.resume();
      node.pause();
      // A frozen JVM holds SIGTERM until thawed: stop must not wait out its whole grace period.
      const started = Date.now();
      await node.stop();
      assert.equal(node.running, false);
      assert.ok(Date.now() - started < 29_000, 'stopped before the 30 s SIGKILL fallback');
    });
  },
);
