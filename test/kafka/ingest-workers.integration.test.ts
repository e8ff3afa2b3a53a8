import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import { readTopic, startTestKafka } from '../helpers/kafka.ts';
import { metricValue, postBatch, waitFor, workerPids } from '../helpers/kafka-process.ts';

const REQUESTS = 200;
const PER_REQUEST = 10;
const CONCURRENCY = 8;

/** Sends `REQUESTS` batches over `CONCURRENCY` connections; returns the ids of the acknowledged events. */
async function load(url: string, prefix: string): Promise<{ acked: string[]; failed: number }> {
  const acked: string[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let r = next++; r < REQUESTS; r = next++) {
        const ids = Array.from({ length: PER_REQUEST }, (_, i) => `${prefix}-${r}-${i}`);
        const status = await postBatch(
          url,
          ids.map((event_id) => ({ event_id, type: 'page_view', user_id: `u-${r % 17}` })),
        );
        if (status === 202) acked.push(...ids);
        else failed += 1;
      }
    }),
  );
  return { acked, failed };
}

test('tally ingest with TALLY_INGEST_WORKERS=2: one port, /metrics summed over the workers, a dead worker restarted, SIGTERM exits 0', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `ingest-workers-${randomUUID()}`;
  const ingest = await spawnTally(
    ['ingest'],
    {
      KAFKA_BROKERS: broker.bootstrap,
      KAFKA_TOPIC: topic,
      TALLY_INGEST_WORKERS: '2',
      TALLY_LOG_LEVEL: 'warn',
    },
    await findFreePort(),
  );
  t.after(() => {
    if (ingest.child.exitCode === null) ingest.child.kill('SIGKILL');
  });
  const primary = ingest.child.pid!;
  await waitFor('two workers', async () => (await workerPids(primary)).length === 2);
  await waitFor('ready', async () => (await fetch(`${ingest.url}/ready`)).status === 200);

  const first = await load(ingest.url, 'a');
  assert.equal(first.failed, 0);
  assert.equal(first.acked.length, REQUESTS * PER_REQUEST);
  // Every scrape, whichever worker answers it, counts the events of both.
  for (let i = 0; i < 4; i++) {
    assert.equal(
      await metricValue(ingest.url, 'tally_ingest_events_total', { outcome: 'accepted' }),
      REQUESTS * PER_REQUEST,
    );
  }

  const [victim, survivor] = await workerPids(primary);
  process.kill(victim, 'SIGKILL');
  await waitFor('the killed worker replaced', async () => {
    const pids = await workerPids(primary);
    return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor);
  });
  await waitFor('ready again', async () => (await fetch(`${ingest.url}/ready`)).status === 200);
  const second = await load(ingest.url, 'b');
  assert.equal(second.failed, 0);

  const inTopic = new Set(
    (await readTopic(broker.bootstrap, topic)).map(
      (m) => (JSON.parse(m.value!.toString()) as { event_id: string }).event_id,
    ),
  );
  for (const id of [...first.acked, ...second.acked]) assert.ok(inTopic.has(id), `${id} is in Kafka`);

  const workers = await workerPids(primary);
  ingest.child.kill('SIGTERM');
  const exit = await ingest.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, ingest.output());
  for (const pid of workers) assert.throws(() => process.kill(pid, 0), 'the workers are gone');
});
