import { ensureTopics } from '../../src/kafka/topics.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { startService, type Service } from '../lib/processes.ts';
import type { Row } from '../lib/report.ts';
import type { BenchContext } from '../run.ts';
import { endToEndRate, freshness, freshnessRows } from './embedded.ts';
import type { KafkaPg } from './processor.ts';

const WORKERS = 2;
const PARTITIONS = 6;

/**
 * Scenario 5 in distributed mode: HTTP → `tally ingest` → Kafka → `tally process` → PostgreSQL,
 * read back through `tally query` (with Redis when `redisUrl` is set). First the end-to-end
 * events/s (the maximum load), then freshness probes under background load at half of it.
 */
export async function kafkaEndToEnd(
  ctx: BenchContext,
  env: KafkaPg,
  redisUrl: string | undefined,
): Promise<{ rows: Row[]; rss: Record<'ingest' | 'process' | 'query', number>; failures: string[] }> {
  const topic = `bench-e2e-${Date.now()}`;
  await ensureTopics({ brokers: [env.bootstrap], topics: [topic], partitions: PARTITIONS });
  const kafka = { KAFKA_BROKERS: env.bootstrap, KAFKA_TOPIC: topic };
  const services: Service[] = [];
  try {
    const metricsPort = await findFreePort();
    const processor = await startService({
      name: 'tally process',
      args: ['process'],
      env: {
        ...kafka,
        DATABASE_URL: env.databaseUrl,
        METRICS_PORT: String(metricsPort),
        NUM_WORKERS: String(WORKERS),
        KAFKA_GROUP_ID: `bench-${topic}`,
      },
      port: metricsPort,
      readyPath: '/ready',
    });
    services.push(processor);
    const ingestPort = await findFreePort();
    const ingest = await startService({
      name: 'tally ingest',
      args: ['ingest'],
      env: { ...kafka, SERVER_PORT: String(ingestPort) },
      port: ingestPort,
      readyPath: '/ready',
    });
    services.push(ingest);
    const queryPort = await findFreePort();
    const query = await startService({
      name: 'tally query',
      args: ['query'],
      env: {
        DATABASE_URL: env.databaseUrl,
        TALLY_QUERY_PORT: String(queryPort),
        TALLY_GRPC_PORT: '0',
        ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }),
      },
      port: queryPort,
    });
    services.push(query);

    const rate = await endToEndRate(
      ingest.url,
      query.url,
      ctx,
      ctx.e2eEvents,
      Date.parse('2022-01-01T00:00:00Z'),
    );
    const fresh = await freshness(ingest.url, query.url, ctx, rate / 2, Date.parse('2023-01-01T00:00:00Z'));
    const path = `HTTP → tally ingest → Kafka (${PARTITIONS} partitions) → tally process (NUM_WORKERS=${WORKERS}) → PostgreSQL → tally query${redisUrl === undefined ? '' : ' + Redis'}`;
    const scenario = '5. freshness, Kafka mode, at half max load';
    return {
      failures: fresh.failure === undefined ? [] : [`scenario 5, Kafka mode: ${fresh.failure}`],
      rss: {
        ingest: await ingest.peakRssMb(),
        process: await processor.peakRssMb(),
        query: await query.peakRssMb(),
      },
      rows: [
        {
          scenario: '5. Kafka mode end to end (max load)',
          metric: `events/s, ${ctx.e2eEvents} events in batches of 100, ${path}`,
          tally: Math.round(rate),
          unit: 'events/s',
        },
        ...freshnessRows(scenario, ctx, fresh),
      ],
    };
  } finally {
    for (const s of services.reverse()) await s.stop();
  }
}
