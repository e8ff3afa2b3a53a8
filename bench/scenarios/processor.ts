import pg from 'pg';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import {
  cpuRows,
  cpuText,
  measureDrain,
  serverPids,
  type DrainWindow,
  type ServerPids,
} from '../lib/drain-window.ts';
import { benchBatch } from '../lib/events.ts';
import { benchProducer, produceAll, toMessage } from '../lib/kafka.ts';
import { startService, type Service } from '../lib/processes.ts';
import { PEER, streamsPeerRow } from './processor-peer.ts';
import type { Row } from '../lib/report.ts';
import type { BenchContext } from '../run.ts';

const DAY = 86_400_000;
const WINDOW = Date.parse('2019-06-01T00:00:00Z');
const WORKERS = 2;
const PARTITIONS = 6;
const CPU_SCENARIO = '3. processor, CPU';
const CPU_TARGET = '≤ 15 µs/event';

export interface KafkaPg {
  bootstrap: string;
  databaseUrl: string;
}

/** Starts one `tally process` on `topic` in consumer group `groupId`; resolves once it is ready. */
export async function startProcessor(
  env: KafkaPg,
  run: { topic: string; groupId: string; workers: number; storeRaw: boolean },
): Promise<Service> {
  const port = await findFreePort();
  return startService({
    name: 'tally process',
    args: ['process'],
    env: {
      KAFKA_BROKERS: env.bootstrap,
      KAFKA_TOPIC: run.topic,
      KAFKA_GROUP_ID: run.groupId,
      DATABASE_URL: env.databaseUrl,
      METRICS_PORT: String(port),
      NUM_WORKERS: String(run.workers),
      TALLY_STORE_RAW: String(run.storeRaw),
    },
    port,
    readyPath: '/ready',
  });
}

/** Events committed so far by consumer group `groupId` on `topic`: every batch transaction advances tally.positions. */
export async function committedEvents(db: pg.Pool, groupId: string, topic: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    'SELECT coalesce(sum(next_offset), 0) AS n FROM tally.positions WHERE group_id = $1 AND topic = $2',
    [groupId, topic],
  );
  return Number(rows[0].n);
}

/**
 * Runs `tally process` on a pre-filled topic and returns events/s from its first committed batch
 * to the last (the consumer group's join and the process start are not counted) and the CPU per
 * event over the same window, read from the positions table, plus the process's peak RSS.
 */
async function drain(
  env: KafkaPg,
  db: pg.Pool,
  servers: ServerPids,
  topic: string,
  total: number,
  storeRaw: boolean,
): Promise<DrainWindow & { rssMb: number }> {
  const groupId = `bench-${topic}`;
  const processor = await startProcessor(env, { topic, groupId, workers: WORKERS, storeRaw });
  try {
    const window = await measureDrain({
      total,
      committed: () => committedEvents(db, groupId, topic),
      pids: [processor.child.pid!],
      servers,
      timeoutMs: 600_000,
      timedOut: (n) => new Error(`tally process committed only ${n} of ${total} events in 10 min`),
    });
    return { ...window, rssMb: await processor.peakRssMb() };
  } finally {
    await processor.stop();
  }
}

const STAGING_COLUMNS = 'project, event_id, type, user_id, ts, received_at, page_url, referrer';

/** Loads `events` into an ordinary staging table (not timed), in chunks through unnest. */
async function loadStaging(db: pg.Pool, events: readonly Record<string, unknown>[], project: string) {
  await db.query('DROP TABLE IF EXISTS public.bench_staging');
  await db.query(
    `CREATE TABLE public.bench_staging (project text, event_id text, type text, user_id text,
       ts timestamptz, received_at timestamptz, page_url text, referrer text)`,
  );
  const now = new Date();
  for (let i = 0; i < events.length; i += 10_000) {
    const chunk = events.slice(i, i + 10_000);
    const col = (f: string) => chunk.map((e) => e[f]);
    await db.query(
      `INSERT INTO public.bench_staging (${STAGING_COLUMNS})
       SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::text[])`,
      [
        project,
        col('event_id'),
        col('type'),
        col('user_id'),
        chunk.map((e) => new Date(e.timestamp as number)),
        chunk.map(() => now),
        col('page_url'),
        col('referrer'),
      ],
    );
  }
  await db.query('VACUUM ANALYZE public.bench_staging');
}

/**
 * PostgreSQL's own ceiling for storing the same rows: one server-side INSERT … SELECT from the
 * staging table into the dedup ledger and the raw events table, in one transaction, timed.
 * `project` is its own, so that the rows Tally stored do not make these duplicates.
 */
export async function sqlCeiling(
  db: pg.Pool,
  events: readonly Record<string, unknown>[],
  project = 'bench-sql-baseline',
): Promise<number> {
  await loadStaging(db, events, project);
  const client = await db.connect();
  try {
    await client.query('SET statement_timeout = 0');
    const started = performance.now();
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO tally.event_ids (project, event_id) SELECT project, event_id FROM public.bench_staging
       ON CONFLICT DO NOTHING`,
    );
    await client.query(
      `INSERT INTO tally.events (${STAGING_COLUMNS}) SELECT ${STAGING_COLUMNS} FROM public.bench_staging`,
    );
    await client.query('COMMIT');
    return events.length / ((performance.now() - started) / 1000);
  } finally {
    client.release();
    await db.query('DROP TABLE IF EXISTS public.bench_staging');
  }
}

/**
 * Scenario 3: `tally process` draining a pre-filled topic into PostgreSQL, raw storage on and
 * off, next to PostgreSQL's own INSERT … SELECT of the same rows and the Kafka Streams peer's
 * drain; then the CPU per event of the drainer, PostgreSQL and the broker in each of the three.
 */
export async function processorScenario(
  ctx: BenchContext,
  env: KafkaPg,
  log: (line: string) => void,
): Promise<{ rows: Row[]; rssMb: number }> {
  const total = ctx.processorEvents;
  const events = benchBatch(total, WINDOW, DAY);
  const stamp = Date.now();
  const topics = { raw: `bench-process-raw-${stamp}`, noRaw: `bench-process-noraw-${stamp}` };
  await ensureTopics({ brokers: [env.bootstrap], topics: Object.values(topics), partitions: PARTITIONS });
  const producer = benchProducer(env.bootstrap);
  try {
    log(`pre-filling two topics with ${total} encoded events each`);
    await produceAll(
      producer,
      events.map((e) => toMessage(topics.raw, e)),
    );
    // Same events, another project: the dedup ledger must not turn the second run into duplicates.
    await produceAll(
      producer,
      events.map((e) => toMessage(topics.noRaw, e, 'bench-raw-off')),
    );
  } finally {
    await producer.close();
  }
  const db = new pg.Pool({ connectionString: env.databaseUrl, max: 2 });
  try {
    const servers = await serverPids(db);
    const drainLogged = async (topic: string, storeRaw: boolean) => {
      log(`tally process, raw storage ${storeRaw ? 'on' : 'off (TALLY_STORE_RAW=false)'}`);
      const d = await drain(env, db, servers, topic, total, storeRaw);
      log(
        Number.isFinite(d.rate)
          ? `  ${Math.round(d.rate)} events/s, ${cpuText(d.cpuUs)} (first to last commit: ${d.measured} events)`
          : `  no rate: the ${total} events were committed within one poll`,
      );
      return d;
    };
    const raw = await drainLogged(topics.raw, true);
    const noRaw = await drainLogged(topics.noRaw, false);
    const peerInput = {
      topic: topics.noRaw,
      events,
      project: 'bench-raw-off',
      partitions: PARTITIONS,
      threads: WORKERS,
    };
    const peer = await streamsPeerRow(env, peerInput, noRaw.rate, log);
    log('PostgreSQL INSERT … SELECT of the same rows');
    const ceiling = await sqlCeiling(db, events);
    const common = {
      tally: 0,
      baseline: Math.round(ceiling),
      baselineName: 'INSERT … SELECT from staging',
      unit: 'events/s',
    };
    const what = `events/s from a pre-filled topic (${total} events, ${PARTITIONS} partitions, NUM_WORKERS=${WORKERS}) into PostgreSQL`;
    const baselineText =
      'baseline: the same rows in one server-side INSERT … SELECT into the dedup ledger + raw table, no rollups';
    return {
      rssMb: Math.max(raw.rssMb, noRaw.rssMb),
      rows: [
        {
          ...common,
          scenario: '3. processor, raw storage on',
          metric: `${what}; ${baselineText}`,
          tally: Math.round(raw.rate),
          target: '≥ 100,000 events/s',
        },
        {
          ...common,
          scenario: '3. processor, raw storage off',
          metric: `${what}, TALLY_STORE_RAW=false; same baseline`,
          tally: Math.round(noRaw.rate),
        },
        ...(peer === undefined ? [] : [peer.row]),
        // Issue 24's targets: the workers' CPU per event (the row adds their primary's), and
        // PostgreSQL's for the write with raw rows.
        ...cpuRows(CPU_SCENARIO, 'with raw storage on', raw.cpuUs, {
          targets: { process: CPU_TARGET, postgres: CPU_TARGET },
        }),
        ...cpuRows(CPU_SCENARIO, 'with raw storage off', noRaw.cpuUs, { targets: { process: CPU_TARGET } }),
        ...(peer === undefined
          ? []
          : cpuRows(CPU_SCENARIO, "in the peer's drain of the raw-storage-off topic", peer.cpuUs, {
              drainer: PEER,
            })),
      ],
    };
  } finally {
    await db.end();
  }
}
