import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Admin } from '@platformatic/kafka';
import { dlqTopic } from '../../src/kafka/dead-letters.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { spawnProcessor, startTestPostgres, waitFor } from '../helpers/kafka-process.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import type { KafkaBroker } from '../../scripts/kafka/broker.ts';

const CALLERS = 16;

test('ensureTopics is idempotent and race-free on a fresh broker', { timeout: 5 * 60_000 }, async (t) => {
  const started = await startTestKafka(t);
  if (!started) return;
  const broker: KafkaBroker = started;
  const admin = new Admin({ clientId: 'topics-test', bootstrapBrokers: [broker.bootstrap] });
  t.after(() => admin.close());

  await t.test(`${CALLERS} concurrent calls for the same new topics all succeed`, async () => {
    // Several rounds: each is a fresh race between the callers' listTopics and createTopics.
    for (let round = 0; round < 3; round++) {
      const topics = [`race-${randomUUID()}`, `race-${randomUUID()}`];
      const results = await Promise.allSettled(
        Array.from({ length: CALLERS }, () =>
          ensureTopics({ brokers: [broker.bootstrap], topics, partitions: 3 }),
        ),
      );
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed, [], `round ${round}: every caller succeeds`);
      const listed = new Set(await admin.listTopics());
      for (const topic of [...topics, ...topics.map(dlqTopic)]) assert.ok(listed.has(topic), topic);
      const described = await admin.metadata({ topics });
      for (const topic of topics) assert.equal(described.topics.get(topic)?.partitionsCount, 3);
    }
  });

  await t.test('a second call for existing topics is a no-op', async () => {
    const topics = [`again-${randomUUID()}`];
    await ensureTopics({ brokers: [broker.bootstrap], topics, partitions: 2 });
    await ensureTopics({ brokers: [broker.bootstrap], topics, partitions: 5 });
    const described = await admin.metadata({ topics });
    assert.equal(described.topics.get(topics[0])?.partitionsCount, 2, 'existing topics are left as they are');
  });

  await t.test('a refusal from the broker fails at once with a clear error', async () => {
    const started = Date.now();
    await assert.rejects(
      ensureTopics({ brokers: [broker.bootstrap], topics: [`bad-${randomUUID()}`], partitions: 0 }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'TALLY_CONFIG_INVALID');
        assert.match(err.message, /TALLY_KAFKA_PARTITIONS/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 10_000, 'not retried');
  });

  await t.test('two `tally process` started at the same instant on new topics both come up', async (t) => {
    const db = await startTestPostgres(t);
    for (let round = 0; round < 2; round++) {
      const env = {
        bootstrap: broker.bootstrap,
        topic: `start-${randomUUID()}`,
        groupId: `g-${randomUUID()}`,
        databaseUrl: db.connectionString,
      };
      // spawnProcessor fails if the child exits before /health answers (the crash).
      const processors = await Promise.all([spawnProcessor(t, env), spawnProcessor(t, env)]);
      await waitFor('both processors ready', async () => {
        const ready = await Promise.all(processors.map((p) => fetch(`${p.url}/ready`)));
        return ready.every((r) => r.status === 200);
      });
      for (const p of processors) assert.equal(p.child.exitCode, null);
    }
  });
});
