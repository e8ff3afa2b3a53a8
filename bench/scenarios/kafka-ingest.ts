import autocannon from 'autocannon';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ensureKafkaJars } from '../../scripts/kafka/broker.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { benchBatch, benchEvent } from '../lib/events.ts';
import { toMessage, topicSize } from '../lib/kafka.ts';
import type { Service } from '../lib/processes.ts';
import type { Row } from '../lib/report.ts';
import type { BenchContext } from '../run.ts';

const BATCH = 100;
const CONNECTIONS = 20;
/**
 * `tally ingest` of scenario 2 runs this many workers (TALLY_INGEST_WORKERS): one process spends
 * its core on JSON and Kafka encoding while the broker leaves the other half idle.
 */
export const BATCHED_INGEST_WORKERS = 2;
const LOG4J = fileURLToPath(new URL('../../scripts/kafka/log4j2.xml', import.meta.url));

/**
 * events/s of `tally ingest` answering 100-event NDJSON requests (202 = Kafka acknowledged,
 * acks=all), after a warm-up; checks the topic holds at least every acknowledged event.
 */
async function batchedIngestRate(
  ctx: BenchContext,
  ingest: Service,
  bootstrap: string,
  topic: string,
): Promise<number> {
  const window = Date.now() - 3_600_000;
  const before = await topicSize(bootstrap, topic);
  const run = (duration: number) =>
    autocannon({
      url: `${ingest.url}/v1/events`,
      connections: CONNECTIONS,
      duration,
      requests: [
        {
          method: 'POST',
          setupRequest: (req) => ({
            ...req,
            headers: { 'content-type': 'application/x-ndjson' },
            body: benchBatch(BATCH, window, 3_600_000)
              .map((e) => JSON.stringify(e))
              .join('\n'),
          }),
        },
      ],
    });
  const warm = await run(ctx.warmupSec);
  const r = await run(ctx.measureSec);
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`batched ingest: ${r.non2xx} non-2xx and ${r.errors} errors`);
  const acked = (warm['2xx'] + r['2xx']) * BATCH;
  const inTopic = (await topicSize(bootstrap, topic)) - before;
  if (inTopic < acked) throw new Error(`only ${inTopic} messages in Kafka for ${acked} acknowledged events`);
  return r.requests.average * BATCH;
}

/** Bytes of one encoded bench event as `tally ingest` writes it (key + value). */
function encodedEventBytes(): number {
  const sample = Array.from({ length: 100 }, () => toMessage('t', benchEvent(Date.now())));
  const total = sample.reduce((sum, m) => sum + (m.key?.length ?? 0) + (m.value?.length ?? 0), 0);
  return Math.round(total / sample.length);
}

/**
 * Kafka's own producer benchmark (org.apache.kafka.tools.ProducerPerformance) with the producer
 * settings of `tally ingest`: acks=all, idempotent, lz4. Returns records/s from its summary line.
 */
async function producerPerformance(
  bootstrap: string,
  topic: string,
  records: number,
  recordSize: number,
): Promise<number> {
  const libs = await ensureKafkaJars();
  const args = [
    '-Xmx512m',
    `-Dlog4j2.configurationFile=${LOG4J}`,
    '-cp',
    `${libs}/*`,
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    topic,
    '--num-records',
    String(records),
    '--record-size',
    String(recordSize),
    '--throughput',
    '-1',
    '--producer-props',
    `bootstrap.servers=${bootstrap}`,
    'acks=all',
    'compression.type=lz4',
    'enable.idempotence=true',
  ];
  const java = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  java.stdout.on('data', (d: Buffer) => (output += d.toString()));
  java.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(java, 'close')) as [number | null];
  // Summary: "300000 records sent, 151057.4 records/sec (36.02 MB/sec), ... 99.9th."
  const summary = output.split('\n').find((l) => / records sent, .* 50th/.test(l));
  const rate = Number(/records sent, ([\d.]+) records\/sec/.exec(summary ?? '')?.[1]);
  if (code !== 0 || !Number.isFinite(rate)) {
    throw new Error(`ProducerPerformance failed (exit ${code}):\n${output.slice(-3000)}`);
  }
  return rate;
}

/**
 * Scenario 2: batched HTTP ingest through `tally ingest` into Kafka, next to Kafka's own producer
 * benchmark on the same broker with the same record size, acks and compression.
 */
export async function batchedIngest(
  ctx: BenchContext,
  ingest: Service,
  bootstrap: string,
  ingestTopic: string,
): Promise<Row> {
  const rate = await batchedIngestRate(ctx, ingest, bootstrap, ingestTopic);
  const perfTopic = `bench-producer-perf-${Date.now()}`;
  await ensureTopics({ brokers: [bootstrap], topics: [perfTopic], partitions: 6 });
  const size = encodedEventBytes();
  const baseline = await producerPerformance(bootstrap, perfTopic, ctx.producerPerfRecords, size);
  return {
    scenario: '2. batched HTTP ingest (tally ingest → Kafka)',
    metric: `events/s, ${BATCH} events per NDJSON request, ${CONNECTIONS} connections, TALLY_INGEST_WORKERS=${BATCHED_INGEST_WORKERS}; baseline: ${ctx.producerPerfRecords} records of ${size} B, acks=all, idempotent, lz4`,
    tally: Math.round(rate),
    baseline: Math.round(baseline),
    baselineName: 'Kafka ProducerPerformance',
    target: '≥ 100,000 events/s',
    unit: 'events/s',
  };
}
