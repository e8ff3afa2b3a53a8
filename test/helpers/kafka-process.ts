import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { ProduceAcks, Producer, type MessageToProduce } from '@platformatic/kafka';
import pg from 'pg';
import { pino } from 'pino';
import { encodeEvent } from '../../src/kafka/codec.ts';
import { openDatabase } from '../../src/store/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/store/embedded-postgres.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { spawnTally, type ChildTally } from './child-tally.ts';
import { cleanupAfter, guardTempDir } from './interrupt.ts';
import { endOffsets } from './kafka.ts';
import { prng, type OracleEvent } from './oracle.ts';
import { waitFor } from './poll.ts';
import { isAlive } from './process-group.ts';
import { storedCount } from './stored-state.ts';

// Polling lives in ./poll.ts; suites import it from here too.
export { waitFor };

export type KafkaMessage = MessageToProduce<Buffer, Buffer, Buffer, Buffer>;

export interface TestPostgres {
  connectionString: string;
  /** A small pool for the test's own queries. */
  pool: pg.Pool;
  /** Stops the server (fault injection); `start()` brings it back on the same port and data. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** A throwaway PostgreSQL server (embedded-postgres binaries), migrated, removed after the test. */
export async function startTestPostgres(t: TestContext): Promise<TestPostgres> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-pg-'));
  guardTempDir(t, dataDir);
  const port = await findFreePort();
  let handle: EmbeddedPostgresHandle | undefined = await startEmbeddedPostgres({ dataDir, port });
  const connectionString = handle.connectionString;
  const db = await openDatabase(
    { kind: 'external', connectionString },
    { poolSize: 2, applicationName: 'test-migrate', logger: pino({ level: 'silent' }) },
  );
  await db.stop();
  const pool = new pg.Pool({ connectionString, max: 3 });
  pool.on('error', () => undefined);
  cleanupAfter(t, async () => {
    await pool.end().catch(() => undefined);
    await handle?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return {
    connectionString,
    pool,
    async stop() {
      await handle?.stop();
      handle = undefined;
    },
    async start() {
      handle = await startEmbeddedPostgres({ dataDir, port });
    },
  };
}

/**
 * `n` distinct events spread over the last few hours (types, users, pages mixed) plus a share of
 * them produced a second time with the same event_id; the oracle holds each event once.
 */
export function generateEvents(n: number, seed: number, resendShare = 0.05) {
  const random = prng(seed);
  const now = Date.now();
  const types = ['page_view', 'page_view', 'page_view', 'click', 'user.login', 'purchase'];
  const runId = `${seed}-${now}`;
  const oracle: OracleEvent[] = [];
  const messages: KafkaMessage[] = [];
  for (let i = 0; i < n; i++) {
    const type = types[Math.floor(random() * types.length)];
    const e: OracleEvent = {
      event_id: `${runId}-${i}`,
      type,
      user_id: `user-${Math.floor(random() * 500)}`,
      ts: now - 60_000 - Math.floor(random() * 3 * 3_600_000),
    };
    if (type === 'page_view' || type === 'click') e.page_url = `/p/${Math.floor(random() * 40)}`;
    oracle.push(e);
    const message = toMessage(e);
    messages.push(message);
    if (random() < resendShare) messages.push(message);
  }
  return { oracle, messages };
}

/** One event in Tally's own Kafka format (what `tally ingest` writes). */
export function toMessage(e: OracleEvent): KafkaMessage {
  const encoded = encodeEvent({
    project: 'default',
    eventId: e.event_id,
    type: e.type,
    userId: e.user_id,
    ts: e.ts,
    receivedAt: Date.now(),
    pageUrl: e.page_url ?? null,
    referrer: null,
    sessionId: null,
    userAgent: null,
    country: null,
    service: null,
    properties: null,
  });
  return {
    topic: '',
    key: Buffer.from(encoded.key),
    value: Buffer.from(encoded.value),
    headers: new Map([...encoded.headers].map(([k, v]) => [Buffer.from(k), Buffer.from(v)])),
  };
}

/** An idempotent acks=all producer, closed after the test. */
export function testProducer(t: TestContext, bootstrap: string): Producer<Buffer, Buffer, Buffer, Buffer> {
  const producer = new Producer({
    clientId: 'test-producer',
    bootstrapBrokers: [bootstrap],
    idempotent: true,
    acks: ProduceAcks.ALL,
    retries: 3,
    retryDelay: 250,
  });
  t.after(() => producer.close());
  return producer;
}

/** Produces `messages` to `topic` in chunks of `chunk`, optionally pausing between chunks. */
export async function produce(
  producer: Producer<Buffer, Buffer, Buffer, Buffer>,
  topic: string,
  messages: readonly KafkaMessage[],
  options: { chunk?: number; pauseMs?: number; onChunk?: (sent: number) => Promise<void> | void } = {},
): Promise<void> {
  const chunk = options.chunk ?? 1000;
  for (let i = 0; i < messages.length; i += chunk) {
    await producer.send({ messages: messages.slice(i, i + chunk).map((m) => ({ ...m, topic })) });
    await options.onChunk?.(Math.min(messages.length, i + chunk));
    if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
  }
}

export interface ProcessorEnv {
  bootstrap: string;
  topic: string;
  groupId: string;
  databaseUrl: string;
  extra?: Record<string, string>;
}

/** `tally process` as a child process (so kill -9 and SIGSTOP are real); stopped after the test. */
export async function spawnProcessor(t: TestContext, env: ProcessorEnv): Promise<ChildTally> {
  const port = await findFreePort();
  const child = await spawnTally(
    ['process'],
    {
      KAFKA_BROKERS: env.bootstrap,
      KAFKA_TOPIC: env.topic,
      KAFKA_GROUP_ID: env.groupId,
      DATABASE_URL: env.databaseUrl,
      METRICS_PORT: String(port),
      TALLY_KAFKA_PARTITIONS: '6',
      TALLY_KAFKA_SESSION_TIMEOUT_MS: '3000',
      BATCH_SIZE: '2000',
      FLUSH_INTERVAL_SEC: '0.2',
      TALLY_DB_POOL_SIZE: '4',
      TALLY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
      ...env.extra,
    },
    port,
  );
  t.after(async () => {
    // TEST_CHILD_LOGS=<dir> keeps every processor's output for a post-mortem.
    if (process.env.TEST_CHILD_LOGS)
      writeFileSync(join(process.env.TEST_CHILD_LOGS, `process-${child.child.pid}.log`), child.output());
    if (child.child.exitCode === null && child.child.signalCode === null) {
      child.child.kill('SIGCONT');
      child.child.kill('SIGTERM');
      const timer = setTimeout(() => child.child.kill('SIGKILL'), 30_000);
      await child.exited;
      clearTimeout(timer);
    }
  });
  return child;
}

/** Sum of the samples of `name` in a Prometheus text page whose labels include `labels`. */
export async function metricValue(
  baseUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const lbl = m[2] ?? '';
    if (!Object.entries(labels).every(([k, v]) => lbl.includes(`${k}="${v}"`))) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** Process ids of the processor workers under a `tally process` primary. */
export async function workerPids(primaryPid: number): Promise<number[]> {
  const { execFileSync } = await import('node:child_process');
  try {
    return execFileSync('pgrep', ['-P', String(primaryPid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * A crash of a whole `tally process`: SIGKILL to the primary and, in the same tick, to its workers.
 * TRICKY: killing the primary alone is no crash for the consumer: its worker sees the IPC channel
 * close and stops as on SIGTERM, committing its batch (lifecycle.ts, stopWhenOrphaned).
 */
export async function crashProcessor(p: ChildTally): Promise<void> {
  const workers = await workerPids(p.child.pid ?? 0);
  p.child.kill('SIGKILL');
  for (const pid of workers) process.kill(pid, 'SIGKILL');
  await p.exited;
  await waitFor('the killed workers gone', () => workers.every((pid) => !isAlive(pid)), 10_000, 20);
}

/**
 * `signal` to a `tally process` primary and, in the same tick, to each of its workers: what a
 * signal to its whole process group does (SIGSTOP freezes the lot, SIGTERM reaches each as from a
 * terminal). The processes that got it, so that a thaw reaches the same ones.
 */
export async function signalProcessor(
  p: ChildTally,
  signal: NodeJS.Signals,
  pids?: readonly number[],
): Promise<number[]> {
  const primary = p.child.pid;
  // TRICKY: never pid 0, which would signal the test runner's own process group.
  if (primary === undefined) return [];
  const targets = pids ?? [primary, ...(await workerPids(primary))];
  for (const pid of targets) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
  return [...targets];
}

/** The next offset consumer group `groupId` has stored for each partition of `topic` (tally.positions). */
export async function storedPositions(
  db: pg.Pool,
  groupId: string,
  topic: string,
): Promise<Map<number, bigint>> {
  const { rows } = await db.query<{ partition: number; next_offset: string }>(
    'SELECT partition, next_offset FROM tally.positions WHERE group_id = $1 AND topic = $2',
    [groupId, topic],
  );
  return new Map(rows.map((r) => [r.partition, BigInt(r.next_offset)]));
}

/**
 * How many partitions of `topic` consumer group `groupId` has stored up to `ends` (end offsets by
 * partition, as endOffsets in ./kafka.ts gives them): the next offset in tally.positions has
 * reached the partition's end.
 */
export async function partitionsStoredUpTo(
  db: pg.Pool,
  groupId: string,
  topic: string,
  ends: readonly bigint[],
): Promise<number> {
  const stored = await storedPositions(db, groupId, topic);
  return ends.filter((end, partition) => (stored.get(partition) ?? 0n) >= end).length;
}

/** Waits until consumer group `groupId` has stored every message of `topic` produced so far. */
export async function waitStoredToEnd(
  db: pg.Pool,
  bootstrap: string,
  groupId: string,
  topic: string,
  timeoutMs = 120_000,
): Promise<void> {
  const ends = await endOffsets(bootstrap, topic);
  await waitFor(
    'every partition stored to its end',
    async () => (await partitionsStoredUpTo(db, groupId, topic, ends)) === ends.length,
    timeoutMs,
  );
}

/** `b` spread through `a` at seeded places (one user's events among the others', say). */
export function interleave<T>(a: readonly T[], b: readonly T[], seed: number): T[] {
  const random = prng(seed);
  const out = [...a];
  for (const m of b) out.splice(Math.floor(random() * (out.length + 1)), 0, m);
  return out;
}

/** A `waitFor` probe: true once the project has `n` distinct events stored. */
export function storedCountProbe(db: pg.Pool, n: number): () => Promise<boolean> {
  return async () => (await storedCount(db)) >= n;
}

/**
 * `tally ingest` as a child process publishing to `topic`, with `env` (DATABASE_URL for API keys);
 * stopped after the test.
 */
export async function spawnIngest(
  t: TestContext,
  bootstrap: string,
  topic: string,
  env: Record<string, string> = {},
): Promise<ChildTally> {
  const port = await findFreePort();
  const child = await spawnTally(
    ['ingest'],
    {
      KAFKA_BROKERS: bootstrap,
      KAFKA_TOPIC: topic,
      TALLY_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      ...env,
    },
    port,
  );
  t.after(async () => {
    if (child.child.exitCode === null && child.child.signalCode === null) {
      child.child.kill('SIGTERM');
      await child.exited;
    }
  });
  return child;
}

/** The HTTP bodies of oracle events (half with ISO timestamps, half with epoch ms). */
export function httpBodies(events: readonly OracleEvent[]): Record<string, unknown>[] {
  return events.map((e, i) => ({
    event_id: e.event_id,
    type: e.type,
    user_id: e.user_id,
    timestamp: i % 2 === 0 ? e.ts : new Date(e.ts).toISOString(),
    ...(e.page_url === undefined ? {} : { page_url: e.page_url }),
  }));
}

/** POSTs one JSON array; the status, or 0 when the connection failed. */
export async function postBatch(baseUrl: string, batch: readonly unknown[]): Promise<number> {
  try {
    const res = await fetch(`${baseUrl}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch),
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** `tally start` (all in one, against Kafka) as a child process with `env`; stopped after the test. */
export async function spawnStartOnKafka(t: TestContext, env: Record<string, string>): Promise<ChildTally> {
  const tally = await spawnTally(
    ['start'],
    { TALLY_GRPC_PORT: '0', TALLY_LOG_LEVEL: 'warn', ...env },
    await findFreePort(),
  );
  t.after(async () => {
    tally.child.kill('SIGTERM');
    await tally.exited;
  });
  return tally;
}
