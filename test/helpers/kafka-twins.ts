import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestContext } from 'node:test';
import pg from 'pg';
import type { KafkaBroker } from '../../scripts/kafka/broker.ts';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { listAudit } from '../../src/store/user-audit.ts';
import { runTally } from './child-tally.ts';
import {
  spawnIngest,
  startTestPostgres,
  waitStoredToEnd,
  type ProcessorEnv,
  type TestPostgres,
} from './kafka-process.ts';
import { createTopic, readTopic, startTestKafka, type ReadMessage } from './kafka.ts';
import { expectedRollups } from './stored-state.ts';
import { busiest, everyAnswer, projectState } from './twin-projects.ts';
import { sendEvents, WebOracle } from './web-oracle.ts';
import { generateTraffic, type Generated } from './web-traffic.ts';

/**
 * Issue 22's twin-project oracle in Kafka mode: the same generated web traffic goes over HTTP to
 * `tally ingest` for project A (every user) and project B (all but one user), through a real
 * broker into `tally process`; the user is deleted from A with `tally users delete`, and A must
 * then store and answer exactly what B does (twin-projects.ts's comparisons).
 */

const PARTITIONS = 6;
/** The deployment's TALLY_USER_HASH_KEY, the same for every role and the CLI. */
const USER_HASH_KEY = 'kafka-twins-user-hash-key-0123456789abcdef';
const HOUR_MS = 3_600_000;

export interface KafkaTwins {
  broker: KafkaBroker;
  db: TestPostgres;
  /** For spawnProcessor: the topic, a fresh consumer group, the database and the hash key. */
  processor: ProcessorEnv;
  /** POSTs `bodies` to project A's or B's /v1/events (its write key), requests of 1..`maxBatch`. */
  send(
    project: 'A' | 'B',
    bodies: readonly Record<string, unknown>[],
    random: () => number,
    maxBatch?: number,
  ): Promise<void>;
  /** Waits until the processors have stored every message produced so far. */
  drained(): Promise<void>;
}

/**
 * A broker, a PostgreSQL, a topic, write keys for projects A and B and one `tally ingest` with
 * them; no processor (the test starts and kills those). Undefined when Kafka cannot run here.
 */
export async function startKafkaTwins(t: TestContext): Promise<KafkaTwins | undefined> {
  const broker = await startTestKafka(t);
  if (!broker) return undefined;
  const db = await startTestPostgres(t);
  const topic = `twins-${randomUUID()}`;
  const groupId = `g-${randomUUID()}`;
  await createTopic(broker.bootstrap, topic, PARTITIONS);
  const store = new ApiKeyStore(db.pool);
  const keys = {
    A: (await createApiKey(store, 'A', 'write')).key,
    B: (await createApiKey(store, 'B', 'write')).key,
  };
  const env = { DATABASE_URL: db.connectionString, TALLY_USER_HASH_KEY: USER_HASH_KEY };
  const ingest = await spawnIngest(t, broker.bootstrap, topic, env);
  return {
    broker,
    db,
    processor: { bootstrap: broker.bootstrap, topic, groupId, databaseUrl: db.connectionString, extra: env },
    async send(project, bodies, random, maxBatch = 40) {
      await sendEvents([ingest.url], bodies, random, {
        maxBatch,
        concurrency: 3,
        headers: { 'x-api-key': keys[project] },
      });
    },
    drained: () => waitStoredToEnd(db.pool, broker.bootstrap, groupId, topic),
  };
}

export interface TwinTraffic {
  /** The user deleted from A: the one with the most late events (its deletion touches most visits). */
  deleted: string;
  /** The other users' first wave for /v1/events (re-sends included), then their late events. */
  bulk: Record<string, unknown>[];
  late: Record<string, unknown>[];
  /** The deleted user's events, each once (first wave first): A alone gets them, where the test says. */
  own: Record<string, unknown>[];
  /** The other users' unique events: what B, and A after the deletion, must hold exactly. */
  others: Generated[];
  /** A range holding every event. */
  range: { from: number; to: number };
}

/** Generated web traffic (web-traffic.ts) of `users` users, split into the deleted user's and the others'. */
export function twinTraffic(seed: number, users: number): TwinTraffic {
  const now = Date.now();
  const traffic = generateTraffic({ seed, users, now });
  const deleted = busiest(traffic.all);
  const kept = (b: Record<string, unknown>) => b.user_id !== deleted;
  return {
    deleted,
    bulk: traffic.bulk.filter(kept),
    late: traffic.late.filter(kept),
    own: traffic.all.filter((g) => !kept(g.body)).map((g) => g.body),
    others: traffic.all.filter((g) => kept(g.body)),
    range: { from: Math.floor((now - 9 * HOUR_MS) / HOUR_MS) * HOUR_MS, to: now + HOUR_MS },
  };
}

/** `tally users delete` of `user` in project A, as an operator runs it beside the Kafka roles. */
export async function deleteFromA(twins: KafkaTwins, user: string): Promise<{ removed: number }> {
  const run = await runTally(['users', 'delete', user, '--project', 'A'], {
    DATABASE_URL: twins.db.connectionString,
    TALLY_USER_HASH_KEY: USER_HASH_KEY,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^deleted user /);
  // How many raw events it removed: its audit record.
  const [audit] = await listAudit(twins.db.pool, { project: 'A', limit: 1 });
  assert.equal(audit.outcome, 'ok');
  return { removed: audit.events };
}

/**
 * Holds project `project`'s lock 741121 SHARED, as a batch in flight does (migration 021), in a
 * session of its own: a deletion (which takes it EXCLUSIVE, migration 022) then waits, and so do
 * the project's batches that come after it. It stretches a deletion's window the way a heavy
 * user's does (seconds), so that events are consumed while it runs. Released after the test.
 */
export async function holdProjectLock(t: TestContext, connectionString: string, project: string) {
  // Not a pool's client: a test failing while it holds the lock must not keep the pool from ending.
  const client = new pg.Client({ connectionString });
  client.on('error', () => undefined);
  await client.connect();
  let held = true;
  // The session's end releases its lock.
  const release = async () => {
    if (!held) return;
    held = false;
    await client.end().catch(() => undefined);
  };
  t.after(release);
  await client.query('SELECT pg_advisory_lock_shared(741121, hashtext($1))', [project]);
  return {
    release,
    /** How many sessions wait for a lock 741121 in `mode` (ExclusiveLock: a deletion; ShareLock: a batch). */
    async waiting(mode: 'ExclusiveLock' | 'ShareLock'): Promise<number> {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks
          WHERE locktype = 'advisory' AND classid = 741121 AND objsubid = 2 AND NOT granted AND mode = $1`,
        [mode],
      );
      return rows[0].n;
    },
  };
}

/** The events dropped on project A's tombstones (late events, replays, re-consumed ones of deleted users). */
export async function droppedInA(twins: KafkaTwins): Promise<number> {
  const { rows } = await twins.db.pool.query<{ n: string }>(
    "SELECT coalesce(sum(dropped_events), 0) AS n FROM tally.user_tombstones WHERE project = 'A'",
  );
  return Number(rows[0].n);
}

/** The messages ingest wrote for `user` of project A, as they are in the topic (its key: project and user). */
export async function messagesOf(twins: KafkaTwins, user: string): Promise<ReadMessage[]> {
  const key = `A\u001f${user}`;
  const all = await readTopic(twins.broker.bootstrap, twins.processor.topic);
  return all.filter((m) => m.key?.toString() === key);
}

/**
 * The end of every Kafka twin test: A stores and answers exactly what B does, and B holds each
 * unique event of the others once, in its rollups, and in the visits the reference sessionizer
 * makes of them (an oracle of its own: equal twins could still both be wrong).
 */
export async function assertTwins(twins: KafkaTwins, traffic: TwinTraffic, what: string): Promise<void> {
  const pool = twins.db.pool;
  const b = await projectState(pool, 'B');
  assert.deepEqual(await projectState(pool, 'A'), b, `${what}: stored state of A = of B`);
  assert.deepEqual(
    await everyAnswer(pool, 'A', traffic.range),
    await everyAnswer(pool, 'B', traffic.range),
    `${what}: every answer of A = of B`,
  );
  const { rows } = await pool.query<{ event_id: string }>(
    "SELECT event_id FROM tally.event_ids WHERE project = 'B'",
  );
  assert.deepEqual(
    rows.map((r) => r.event_id).sort(),
    traffic.others.map((g) => g.event.event_id).sort(),
    `${what}: each event of B stored once`,
  );
  // The rollups count human events only (a bot's are in the raw rows and visits alone).
  const want = expectedRollups(
    traffic.others
      .filter((g) => !g.event.is_bot)
      .map((g) => ({
        event_id: g.event.event_id,
        type: g.event.type,
        user_id: g.event.user_id,
        ts: g.event.ts,
        ...(typeof g.body.page_url === 'string' ? { page_url: g.body.page_url } : {}),
      })),
  );
  assert.deepEqual(
    { events: b.events, pages: b.pages, users: b.users },
    want,
    `${what}: the rollups of B = the events' counts`,
  );
  assert.deepEqual(
    b.visits,
    new WebOracle(traffic.others).visits.map(({ project: _p, ...v }) => v),
    `${what}: the visits of B = the reference sessionizer's`,
  );
}
