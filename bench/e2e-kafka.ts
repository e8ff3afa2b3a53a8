import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ProduceAcks, Producer, type MessageToProduce } from '@platformatic/kafka';
import { pino } from 'pino';
import { startKafkaBroker } from '../scripts/kafka/broker.ts';
import { normalizeEvent } from '../src/event/normalize.ts';
import { encodeEvent } from '../src/kafka/codec.ts';
import { ensureTopics } from '../src/kafka/topics.ts';
import { openDatabase } from '../src/store/database.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { findFreePort } from '../src/util/free-port.ts';
import { benchBatch, benchEvent } from './lib/events.ts';
import { startService } from './lib/processes.ts';
import { percentile, round } from './lib/stats.ts';
import { summaryEvents, waitForCount } from './lib/tally-http.ts';
import { endToEndRate, freshness } from './scenarios/embedded.ts';
import type { BenchContext } from './run.ts';

/**
 * `node bench/e2e-kafka.ts [--events N] [--probes N] [--workers N]`: the distributed path on a
 * real broker and PostgreSQL. Events/s from the first send until the summary counts them all,
 * and p50/p99 from "accepted" to "visible in /v1/stats/summary" under background load at half
 * that rate. With a `tally ingest` role, events enter over HTTP (202 = Kafka acknowledged);
 * without one they are produced straight into Kafka (acks=all) and the figures say so.
 * Queries are served by `tally start` on the same database (it reads what the processors wrote).
 */
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    probes: { type: 'string', default: '100' },
    workers: { type: 'string', default: '2' },
  },
});
const total = Number(values.events);
const probes = Number(values.probes);
const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const TOPIC = 'incoming.user_activity';
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const cleanups: (() => Promise<void>)[] = [];

function hasIngestRole(): boolean {
  const r = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8', timeout: 30_000 });
  return /^ {2}ingest\b/m.test(r.stdout);
}

function toMessage(body: Record<string, unknown>): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const r = normalizeEvent(body, { project: 'default', receivedAt: Date.now(), maxFutureSkewMs: 300_000 });
  if (!r.ok) throw new Error(`bench event invalid: ${JSON.stringify(r.issues)}`);
  const e = encodeEvent(r.event);
  return {
    topic: TOPIC,
    key: Buffer.from(e.key),
    value: Buffer.from(e.value),
    headers: new Map([...e.headers].map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
  };
}

try {
  const dir = await mkdtemp(join(tmpdir(), 'tally-bench-kafka-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  log('starting Kafka and PostgreSQL');
  const broker = await startKafkaBroker({ dataDir: join(dir, 'kafka') });
  cleanups.unshift(() => broker.stop());
  const pg = await startEmbeddedPostgres({ dataDir: dir });
  cleanups.unshift(() => pg.stop());
  const db = await openDatabase(
    { kind: 'external', connectionString: pg.connectionString },
    { poolSize: 2, applicationName: 'bench', logger: pino({ level: 'silent' }) },
  );
  await db.stop();
  const brokers = [broker.bootstrap];
  await ensureTopics({ brokers, topics: [TOPIC], partitions: 6 });
  const common = { KAFKA_BROKERS: broker.bootstrap, KAFKA_TOPIC: TOPIC, DATABASE_URL: pg.connectionString };

  const metricsPort = await findFreePort();
  log(`starting tally process (${values.workers} workers)`);
  const processor = await startService({
    name: 'tally process',
    args: ['process'],
    env: {
      ...common,
      METRICS_PORT: String(metricsPort),
      NUM_WORKERS: values.workers,
      FLUSH_INTERVAL_SEC: '0.1',
    },
    port: metricsPort,
    readyPath: '/ready',
  });
  cleanups.unshift(() => processor.stop());
  const queryPort = await findFreePort();
  const query = await startService({
    name: 'tally start (queries)',
    args: ['start'],
    env: { SERVER_PORT: String(queryPort), DATABASE_URL: pg.connectionString },
    port: queryPort,
  });
  cleanups.unshift(() => query.stop());

  let rate: number;
  let latencies: number[];
  let path: string;
  if (hasIngestRole()) {
    path = 'HTTP → tally ingest → Kafka → tally process → PostgreSQL';
    const ingestPort = await findFreePort();
    const ingest = await startService({
      name: 'tally ingest',
      args: ['ingest'],
      env: { ...common, SERVER_PORT: String(ingestPort) },
      port: ingestPort,
    });
    cleanups.unshift(() => ingest.stop());
    const ctx: BenchContext = {
      quick: false,
      warmupSec: 1,
      measureSec: 10,
      connections: 16,
      e2eEvents: total,
      probes,
    };
    rate = await endToEndRate(ingest.url, query.url, ctx, total, Date.parse('2020-01-01T00:00:00Z'));
    latencies = await freshness(ingest.url, query.url, ctx, rate / 2, Date.parse('2021-01-01T00:00:00Z'));
  } else {
    path = 'producer (acks=all) → Kafka → tally process → PostgreSQL (no tally ingest role in this build)';
    const producer = new Producer({
      clientId: 'bench',
      bootstrapBrokers: brokers,
      idempotent: true,
      acks: ProduceAcks.ALL,
      retries: 3,
    });
    cleanups.unshift(() => producer.close());
    const windowStart = Date.parse('2020-01-01T00:00:00Z');
    const messages = benchBatch(total, windowStart, DAY).map(toMessage);
    const before = await summaryEvents(query.url, windowStart, windowStart + DAY);
    const started = performance.now();
    const CHUNK = 2000;
    const chunks: (typeof messages)[] = [];
    for (let i = 0; i < messages.length; i += CHUNK) chunks.push(messages.slice(i, i + CHUNK));
    // Four sends in flight: enough to keep the broker busy without reordering a user's events much.
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let c = chunks.shift(); c; c = chunks.shift()) await producer.send({ messages: c });
      }),
    );
    const visible = await waitForCount(
      query.url,
      windowStart,
      windowStart + DAY,
      before + total,
      600_000,
      50,
    );
    rate = total / ((visible - started) / 1000);

    // Freshness under background load at half the measured rate.
    const probeStart = Date.parse('2021-01-01T00:00:00Z');
    let loading = true;
    const load = (async () => {
      const perTick = Math.max(1, Math.round(rate / 2 / 10));
      while (loading) {
        const tick = performance.now();
        await producer.send({ messages: benchBatch(perTick, probeStart + 10 * DAY, DAY).map(toMessage) });
        await sleep(Math.max(0, 100 - (performance.now() - tick)));
      }
    })();
    latencies = [];
    try {
      for (let i = 0; i < probes; i++) {
        const minute = probeStart + i * MINUTE;
        await producer.send({ messages: [toMessage(benchEvent(minute + 1000))] });
        const accepted = performance.now();
        const seen = await waitForCount(query.url, minute, minute + MINUTE, 1, 30_000, 2);
        latencies.push(seen - accepted);
        await sleep(50);
      }
    } finally {
      loading = false;
      await load;
    }
  }
  const lines = [
    `path: ${path}`,
    `events/s end to end (${total} events, ${values.workers} processor workers, 6 partitions): ${Math.round(rate)}`,
    `accepted → visible in /v1/stats/summary at half that load (${latencies.length} probes): ` +
      `p50 ${round(percentile(latencies, 50))} ms, p99 ${round(percentile(latencies, 99))} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  for (const cleanup of cleanups)
    await cleanup().catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
}
