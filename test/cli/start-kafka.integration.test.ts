import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import { metricValue, waitFor } from '../helpers/kafka-process.ts';
import { startTestKafka } from '../helpers/kafka.ts';
import { Oracle, pool } from '../helpers/oracle.ts';

test('tally start with KAFKA_BROKERS: HTTP → Kafka → processor → queries, exact; SIGTERM exits 0', async (t) => {
  const broker = await startTestKafka(t);
  if (!broker) return;
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-start-kafka-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const topic = `start-${randomUUID()}`;
  const port = await findFreePort();
  const tally = await spawnTally(
    ['start'],
    {
      KAFKA_BROKERS: broker.bootstrap,
      KAFKA_TOPIC: topic,
      TALLY_DATA_DIR: dataDir,
      FLUSH_INTERVAL_SEC: '0.2',
      TALLY_LOG_LEVEL: 'warn',
    },
    port,
  );
  t.after(() => {
    if (tally.child.exitCode === null) tally.child.kill('SIGKILL');
  });

  const oracle = new Oracle();
  const now = Date.now();
  const bodies = Array.from({ length: 5000 }, (_, i) => {
    const e = {
      event_id: `${topic}-${i}`,
      type: i % 3 === 0 ? 'click' : 'page_view',
      user_id: `u-${i % 300}`,
      ts: now - 120_000 - (i % 7200) * 1000,
      page_url: `/p/${i % 25}`,
    };
    oracle.add(e);
    return { ...e, timestamp: e.ts, ts: undefined };
  });
  // Each request once, and one in ten a second time (client retries with the same event_id).
  const requests: (typeof bodies)[] = [];
  for (let i = 0; i < bodies.length; i += 50) requests.push(bodies.slice(i, i + 50));
  for (let i = 0; i < requests.length; i += 10) requests.push(requests[i]);
  await pool(
    requests.map((batch) => async () => {
      const res = await fetch(`${tally.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(batch),
      });
      assert.equal(res.status, 202);
    }),
    8,
  );

  const from = new Date(now - 4 * 3_600_000).toISOString();
  const to = new Date(now + 60_000).toISOString();
  const expected = oracle.summary(now - 4 * 3_600_000, now + 60_000);
  let last: unknown;
  await waitFor('the summary to count every event once', async () => {
    const res = await fetch(`${tally.url}/v1/stats/summary?from=${from}&to=${to}`);
    const body = (await res.json()) as { events: number; page_views: number; unique_users: number };
    last = body;
    return body.events >= expected.events;
  });
  assert.deepEqual(
    (({ events, page_views, unique_users }) => ({ events, page_views, unique_users }))(
      last as typeof expected,
    ),
    expected,
  );
  // The events went through Kafka: the in-process consumer reports its lag per partition.
  await waitFor(
    'consumer lag reported and 0',
    async () => (await metricValue(tally.url, 'tally_consumer_lag', { topic })) === 0,
  );

  tally.child.kill('SIGTERM');
  assert.deepEqual(await tally.exited, { code: 0, signal: null });
});
