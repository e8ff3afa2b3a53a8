import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally } from '../helpers/child-tally.ts';
import { readTopic, startTestKafka } from '../helpers/kafka.ts';

const EVENTS = 40_000;
const PER_REQUEST = 20;
const CONCURRENCY = 16;

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return kb === null ? 0 : Number(kb[1]) * 1024;
}

async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('tally ingest: broker killed under load and restarted — every 2xx event is in Kafka, everything else got 503 + Retry-After, memory bounded; SIGTERM exits 0', async (t) => {
  const broker = await startTestKafka(t);
  if (broker === undefined) return;
  const topic = `ingest-fault-${randomUUID()}`;
  const port = await findFreePort();
  const ingest = await spawnTally(
    ['ingest'],
    {
      KAFKA_BROKERS: broker.bootstrap,
      KAFKA_TOPIC: topic,
      TALLY_KAFKA_PARTITIONS: '3',
      TALLY_KAFKA_ACK_TIMEOUT_MS: '3000',
      TALLY_INGEST_MAX_INFLIGHT_BYTES: String(4 * 1024 * 1024),
      TALLY_LOG_LEVEL: 'warn',
    },
    port,
  );
  t.after(() => {
    if (ingest.child.exitCode === null) ingest.child.kill('SIGKILL');
  });
  const pid = ingest.child.pid!;

  const acked = new Set<string>();
  const statuses = new Map<string, number>();
  let badRefusals = 0;
  let rssPeak = 0;
  let stopSampling = false;
  const sampler = (async () => {
    while (!stopSampling) {
      rssPeak = Math.max(rssPeak, await rssBytes(pid).catch(() => 0));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  /** Posts one request; true when acknowledged. */
  const post = async (ids: string[]): Promise<boolean> => {
    const body = ids
      .map((id, i) =>
        JSON.stringify({ event_id: id, type: i % 3 ? 'page_view' : 'click', user_id: `u${i % 13}` }),
      )
      .join('\n');
    const res = await fetch(`${ingest.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    await res.arrayBuffer();
    const key = String(res.status);
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
    if (res.status === 202) return true;
    if (res.status !== 503 || res.headers.get('retry-after') === null) badRefusals++;
    return false;
  };

  let next = 0;
  const worker = async () => {
    for (;;) {
      const start = next;
      next += PER_REQUEST;
      if (start >= EVENTS) return;
      const ids = Array.from({ length: PER_REQUEST }, (_, i) => `ev-${start + i}`);
      // A well-behaved client: retry the same events (same event_id) until acknowledged.
      while (!(await post(ids))) await new Promise((r) => setTimeout(r, 200));
      for (const id of ids) acked.add(id);
    }
  };
  const baselineRss = await rssBytes(pid);
  const load = Promise.all(Array.from({ length: CONCURRENCY }, worker));

  await until('a quarter of the load', () => acked.size >= EVENTS / 4);
  await broker.kill();
  const readyDuringOutage = await until('some 503s', () => (statuses.get('503') ?? 0) >= 20).then(
    async () => {
      const res = await fetch(`${ingest.url}/ready`);
      return { status: res.status, body: (await res.json()) as { checks: Record<string, string> } };
    },
  );
  await broker.restart();
  await load;
  stopSampling = true;
  await sampler;

  assert.equal(readyDuringOutage.status, 503);
  assert.equal(readyDuringOutage.body.checks.kafka, 'down');
  assert.equal((await fetch(`${ingest.url}/ready`)).status, 200);
  const metricsText = await (await fetch(`${ingest.url}/metrics`)).text();
  assert.match(metricsText, /^tally_ingest_inflight_bytes 0$/m);
  assert.equal(badRefusals, 0, `non-503 refusals: ${JSON.stringify([...statuses])}`);
  assert.equal(acked.size, EVENTS);

  // Every acknowledged event is in the topic; dedup by event_id (retries may have written twice).
  const inTopic = await readTopic(broker.bootstrap, topic);
  const ids = new Set(inTopic.map((m) => (JSON.parse(m.value!.toString()) as { event_id: string }).event_id));
  assert.equal(ids.size, acked.size);
  for (const id of acked) assert.ok(ids.has(id), `acknowledged ${id} is missing from Kafka`);
  const growth = rssPeak - baselineRss;
  process.stderr.write(
    `ingest fault: ${EVENTS} events acked, statuses ${JSON.stringify(Object.fromEntries(statuses))}, ` +
      `${inTopic.length - ids.size} duplicate messages, RSS ${(baselineRss / 2 ** 20).toFixed(0)} MiB → peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB\n`,
  );
  // In-flight bytes are bounded at 4 MiB; the process may grow by its buffers, not by the outage.
  assert.ok(growth < 256 * 2 ** 20, `ingest RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB`);

  // SIGTERM under load: in-flight requests get their answer, the process exits 0, and every 2xx is in Kafka.
  const lateAcked = new Set<string>();
  let sent = 0;
  let stopping = false;
  const lateWorker = async () => {
    while (!stopping || sent < 200) {
      const start = EVENTS + sent;
      sent += PER_REQUEST;
      const batch = Array.from({ length: PER_REQUEST }, (_, i) => `late-${start + i}`);
      try {
        if (await post(batch)) for (const id of batch) lateAcked.add(id);
      } catch {
        return; // the server has closed
      }
      if (stopping) return;
    }
  };
  const late = Promise.all(Array.from({ length: 8 }, lateWorker));
  await until('late load', () => lateAcked.size >= 400);
  stopping = true;
  ingest.child.kill('SIGTERM');
  const exit = await ingest.exited;
  await late;
  assert.deepEqual(exit, { code: 0, signal: null }, ingest.output().slice(-3000));
  const after = new Set(
    (await readTopic(broker.bootstrap, topic)).map(
      (m) => (JSON.parse(m.value!.toString()) as { event_id: string }).event_id,
    ),
  );
  for (const id of lateAcked) assert.ok(after.has(id), `acknowledged ${id} is missing after SIGTERM`);
});
