import autocannon from 'autocannon';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Admin } from '@platformatic/kafka';
import { startKafkaBroker } from '../scripts/kafka/broker.ts';
import { findFreePort } from '../src/util/free-port.ts';
import { benchBatch, benchEvent } from './lib/events.ts';
import { startService } from './lib/processes.ts';

/**
 * `npm run bench:kafka-ingest [-- --quick]`: `tally ingest` against a real local broker.
 * Single-event and 100-event requests under load; each request is answered 202 only after
 * Kafka acknowledged it (acks=all). Prints requests/s, events/s, latency p50/p99, peak RSS,
 * and checks the topic holds at least every acknowledged event.
 */
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const measureSec = values.quick ? 3 : 10;
const warmupSec = values.quick ? 1 : 3;
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

const dataDir = await mkdtemp(join(tmpdir(), 'tally-bench-kafka-'));
const broker = await startKafkaBroker({ dataDir });
const topic = `bench-${Date.now()}`;
const port = await findFreePort();
const ingest = await startService({
  name: 'tally ingest',
  args: ['ingest'],
  env: { SERVER_PORT: String(port), KAFKA_BROKERS: broker.bootstrap, KAFKA_TOPIC: topic },
  port,
  readyPath: '/ready',
});
const window = Date.now() - 3_600_000;

async function load(name: string, connections: number, eventsPerRequest: number) {
  const run = (duration: number) =>
    autocannon({
      url: `${ingest.url}/v1/events`,
      connections,
      duration,
      requests: [
        {
          method: 'POST',
          setupRequest: (req) => ({
            ...req,
            headers: { 'content-type': eventsPerRequest === 1 ? 'application/json' : 'application/x-ndjson' },
            body:
              eventsPerRequest === 1
                ? JSON.stringify(benchEvent(window))
                : benchBatch(eventsPerRequest, window, 3_600_000)
                    .map((e) => JSON.stringify(e))
                    .join('\n'),
          }),
        },
      ],
    });
  await run(warmupSec);
  const r = await run(measureSec);
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${name}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  return {
    name,
    connections,
    reqPerSec: Math.round(r.requests.average),
    eventsPerSec: Math.round(r.requests.average * eventsPerRequest),
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    acked: r.requests.total * eventsPerRequest,
  };
}

try {
  log(`broker ${broker.bootstrap}, tally ingest ${ingest.url}, topic ${topic}`);
  const rows = [
    await load('single event per request', 50, 1),
    await load('100 events per request (NDJSON)', 20, 100),
  ];
  const admin = new Admin({ clientId: 'bench', bootstrapBrokers: [broker.bootstrap] });
  const metadata = await admin.metadata({ topics: [topic] });
  const partitions = metadata.topics.get(topic)!.partitionsCount;
  const [offsets] = await admin.listOffsets({
    topics: [
      {
        name: topic,
        partitions: Array.from({ length: partitions }, (_, p) => ({ partitionIndex: p, timestamp: -1n })),
      },
    ],
  });
  await admin.close();
  const inTopic = offsets.partitions.reduce((sum, p) => sum + Number(p.offset), 0);
  const rss = await ingest.peakRssMb();
  process.stdout.write(
    '| load | connections | requests/s | events/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n',
  );
  for (const r of rows) {
    process.stdout.write(
      `| ${r.name} | ${r.connections} | ${r.reqPerSec} | ${r.eventsPerSec} | ${r.p50ms} | ${r.p99ms} |\n`,
    );
  }
  process.stdout.write(
    `\nmessages in the topic: ${inTopic} (warm-up included); peak RSS of tally ingest: ${rss.toFixed(0)} MB\n`,
  );
  const measuredAcked = rows.reduce((sum, r) => sum + r.acked, 0);
  if (inTopic < measuredAcked)
    throw new Error(`only ${inTopic} messages in Kafka for ${measuredAcked} acknowledged events`);
} finally {
  await ingest.stop();
  await broker.stop();
  await rm(dataDir, { recursive: true, force: true });
}
