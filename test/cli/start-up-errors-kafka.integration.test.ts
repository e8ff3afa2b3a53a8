import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { holdPort } from '../helpers/process-group.ts';
import { assertCleanFailure, tallyToExit } from '../helpers/start-up-failure.ts';

// One broker for the roles that need Kafka; each subtest holds its own port busy.
test('start-up failures of the Kafka roles: one line naming the setting, nothing left running', async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const kafka = () => ({ KAFKA_BROKERS: broker.bootstrap, KAFKA_TOPIC: `start-up-${randomUUID()}` });

  await t.test('tally ingest: SERVER_PORT in use', async (t) => {
    const busy = await holdPort(t);
    const run = await tallyToExit(t, 'ingest', { ...kafka(), SERVER_PORT: String(busy) });
    await assertCleanFailure(run, 'SERVER_PORT');
    assert.match(run.stderr, new RegExp(`port ${busy} \\(SERVER_PORT\\) is already in use`));
  });

  await t.test(
    'tally ingest, TALLY_INGEST_WORKERS=2: SERVER_PORT in use → the primary says it once, exits 1',
    async (t) => {
      const busy = await holdPort(t);
      const run = await tallyToExit(t, 'ingest', {
        ...kafka(),
        SERVER_PORT: String(busy),
        TALLY_INGEST_WORKERS: '2',
      });
      // Exit 1 as before for a worker that cannot start (test/kafka/ingest-workers.integration.test.ts).
      await assertCleanFailure(run, 'SERVER_PORT', [], 1);
      assert.match(run.stderr, new RegExp(`port ${busy} \\(SERVER_PORT\\) is already in use`));
    },
  );

  await t.test('tally process: METRICS_PORT in use (its embedded PostgreSQL stopped)', async (t) => {
    const busy = await holdPort(t);
    const run = await tallyToExit(t, 'process', { ...kafka(), METRICS_PORT: String(busy) });
    await assertCleanFailure(run, 'METRICS_PORT');
  });

  await t.test(
    'tally start with KAFKA_BROKERS: SERVER_PORT in use (its embedded PostgreSQL stopped)',
    async (t) => {
      const busy = await holdPort(t);
      const grpc = await findFreePort();
      const run = await tallyToExit(t, 'start', {
        ...kafka(),
        SERVER_PORT: String(busy),
        TALLY_GRPC_PORT: String(grpc),
      });
      await assertCleanFailure(run, 'SERVER_PORT', [grpc]);
    },
  );
});
