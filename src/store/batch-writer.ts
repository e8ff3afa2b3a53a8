import type pg from 'pg';
import type { TallyEvent } from '../event/types.ts';
import { TallyError } from '../errors/tally-error.ts';
import { compareStrings } from '../util/compare-strings.ts';
import type { FirstStatistics } from './first-statistics.ts';
import { classifyPgError } from './pg-errors.ts';
import { dayStart, type RawPartitions } from './partitions.ts';
import { KnownUserRows } from './known-user-rows.ts';
import { UserHashes, userHashKey } from './user-hash.ts';
import { UserNumbers } from './user-numbers.ts';
import { writeEvents, type Derive, type StoredEvents } from './write-events.ts';

export interface DeadLetter {
  project: string | null;
  reason: string;
  detail: string;
  payload: Buffer;
  source: 'http' | 'kafka';
  topic: string | null;
  partition: number | null;
  offset: number | null;
}

export interface PositionUpdate {
  groupId: string;
  topic: string;
  partition: number;
  /** The next_offset this consumer read from PostgreSQL when it took the partition (null: none stored). */
  expected: number | null;
  next: number;
}

export interface BatchInput {
  events: readonly TallyEvent[];
  deadLetters?: readonly DeadLetter[];
  positions?: readonly PositionUpdate[];
}

export interface BatchResult {
  /** For each input event: true when it was stored now, false when it was already known or dropped. */
  fresh: boolean[];
  /**
   * For each input event: true when its user was deleted (a tombstone), so it was dropped: not
   * stored, not counted. Every copy of such an event in the batch, so that the answer does not
   * depend on which requests the micro-batcher coalesced.
   */
  ofDeletedUser: boolean[];
  inserted: number;
  /** Input events already known (stored before, or earlier in the batch), none of a deleted user. */
  duplicates: number;
  /**
   * Input events of deleted users (ofDeletedUser). The tombstones count each (project, event_id)
   * once per batch, so a repeat inside one batch counts here only.
   */
  dropped: number;
  /** Committed events, for metrics and live updates. */
  insertedEvents: TallyEvent[];
  /** How many of the committed events are bots (stored raw, in no rollup). */
  insertedBots: number;
}

export interface BatchWriterDeps {
  pool: pg.Pool;
  partitions: RawPartitions;
  storeRaw: boolean;
  /** A gap longer than this between one user's events starts a new visit (TALLY_SESSION_TIMEOUT_MIN); default 30 min. */
  sessionTimeoutMs?: number;
  /** The dimensions of an event (default: src/event/derive.ts); tests pin bot flags with their own. */
  derive?: Derive;
  /**
   * The key of the user hashes the tombstones hold: userHashKey(pool, TALLY_USER_HASH_KEY), read at
   * start-up so that a wrong key stops the process before it consumes. Unset: the key the database
   * stores (userHashKey(pool, undefined)), read at the first batch.
   */
  userHashKey?: Buffer;
  /** Called right after each commit with the data versions it moved (this process's query cache). */
  onVersions?: (versions: ReadonlyMap<string, number>) => void;
  /** Analyzes the tables written that have no statistics yet (first-statistics.ts); the services set it. */
  statistics?: FirstStatistics;
}

/**
 * The processing core's storage step: in ONE transaction, advance the source positions (fenced),
 * record dead letters, drop the events of deleted users, insert dedup keys, store raw rows and add
 * rollup deltas derived only from the events inserted now. Either everything commits or nothing
 * does.
 *
 * The events go in one call of tally.write_events (write-events.ts). A batch with no positions
 * and no dead letters (every HTTP batch) is that one statement, in its own implicit transaction:
 * one round trip. The processor's batches open a transaction around it for their positions and
 * dead letters.
 */
/** TALLY_SESSION_TIMEOUT_MIN's default, in ms. */
export const DEFAULT_SESSION_TIMEOUT_MS = 30 * 60_000;

export class BatchWriter {
  readonly #deps: BatchWriterDeps;
  readonly #userNumbers: UserNumbers;
  readonly #knownUserRows = new KnownUserRows();
  #userHashes: UserHashes | undefined;

  constructor(deps: BatchWriterDeps) {
    this.#deps = deps;
    this.#userNumbers = new UserNumbers(deps.pool);
  }

  async write(input: BatchInput): Promise<BatchResult> {
    const { first, unique } = dedupeWithinBatch(input.events);
    const positions = input.positions ?? [];
    const deadLetters = input.deadLetters ?? [];
    const cutoff = this.#deps.partitions.cutoff();
    if (this.#deps.storeRaw) {
      await this.#deps.partitions.ensure(unique.filter((e) => e.ts >= cutoff).map((e) => dayStart(e.ts)));
    }
    let client: pg.PoolClient;
    let numbers: Map<string, number | null>;
    let hashes: Map<string, Buffer>;
    try {
      const userHashes = await this.#hashes();
      hashes = hashUsers(unique, userHashes);
      numbers = await this.#userNumbers.resolve(usersByProject(unique), (id) => userHashes.of(id));
      client = await this.#deps.pool.connect();
    } catch (err) {
      throw classifyPgError(err);
    }
    const transaction = positions.length > 0 || deadLetters.length > 0;
    let broken = false;
    try {
      if (transaction) {
        await client.query('BEGIN');
        for (const p of positions) await advancePosition(client, p);
        if (deadLetters.length > 0) await insertDeadLetters(client, deadLetters);
      }
      const stored: StoredEvents =
        unique.length === 0
          ? {
              fresh: [],
              dropped: [],
              versions: new Map(),
              userRows: { project: [], key: [], userId: [] },
              bot: [],
            }
          : await writeEvents(
              client,
              unique,
              this.#deps.storeRaw ? cutoff : undefined,
              numbers,
              this.#knownUserRows,
              this.#deps.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
              hashes,
              this.#deps.derive,
            );
      if (transaction) await client.query('COMMIT');
      this.#knownUserRows.remember(stored.userRows);
      this.#deps.onVersions?.(stored.versions);
      this.#deps.statistics?.afterCommit();
      const inserted = unique.filter((_e, i) => stored.fresh[i]);
      let insertedBots = 0;
      const droppedKeys = new EventKeys();
      for (let i = 0; i < unique.length; i++) {
        if (stored.fresh[i] && stored.bot[i]) insertedBots++;
        if (stored.dropped[i]) droppedKeys.add(unique[i].project, unique[i].eventId);
      }
      const freshKeys = new EventKeys();
      for (const e of inserted) freshKeys.add(e.project, e.eventId);
      const ofDeletedUser = input.events.map((e) => droppedKeys.has(e));
      const dropped = ofDeletedUser.filter(Boolean).length;
      return {
        fresh: input.events.map((e, i) => first[i] && freshKeys.has(e)),
        ofDeletedUser,
        inserted: inserted.length,
        duplicates: input.events.length - inserted.length - dropped,
        dropped,
        insertedEvents: inserted,
        insertedBots,
      };
    } catch (err) {
      // Alone, the failed statement has rolled its implicit transaction back already.
      if (transaction) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
      }
      throw classifyPgError(err);
    } finally {
      client.release(broken);
    }
  }

  async #hashes(): Promise<UserHashes> {
    this.#userHashes ??= new UserHashes(
      this.#deps.userHashKey ?? (await userHashKey(this.#deps.pool, undefined)),
    );
    return this.#userHashes;
  }
}

/** Each distinct user id of `events` to its keyed hash. */
function hashUsers(events: readonly TallyEvent[], userHashes: UserHashes): Map<string, Buffer> {
  const hashes = new Map<string, Buffer>();
  for (const e of events) if (!hashes.has(e.userId)) hashes.set(e.userId, userHashes.of(e.userId));
  return hashes;
}

/** A set of (project, event_id) keys, without building a key string per event. */
class EventKeys {
  readonly #byProject = new Map<string, Set<string>>();

  /** Adds the key; false when it was there already. */
  add(project: string, eventId: string): boolean {
    let ids = this.#byProject.get(project);
    if (ids === undefined) {
      ids = new Set<string>();
      this.#byProject.set(project, ids);
    }
    if (ids.has(eventId)) return false;
    ids.add(eventId);
    return true;
  }

  has(e: TallyEvent): boolean {
    return this.#byProject.get(e.project)?.has(e.eventId) ?? false;
  }
}

/**
 * `first`: for each event, whether it is the first in the batch with its (project, event_id);
 * `unique`: those first occurrences, sorted by (project, event_id).
 *
 * TRICKY: sorted so that concurrent batches (TALLY_MAX_INFLIGHT_BATCHES, partitions processed in
 * parallel) insert overlapping dedup keys in one order: the second inserter of a key waits for
 * the first to commit, and two batches holding keys the other wants would deadlock.
 */
function dedupeWithinBatch(events: readonly TallyEvent[]): { first: boolean[]; unique: TallyEvent[] } {
  const seen = new EventKeys();
  const first = events.map((e) => seen.add(e.project, e.eventId));
  const unique = events.filter((_, i) => first[i]);
  unique.sort((a, b) => compareStrings(a.project, b.project) || compareStrings(a.eventId, b.eventId));
  return { first, unique };
}

// TRICKY: the conditional upsert is the fence of DESIGN.md guarantee 2. A consumer whose
// partition moved to another member finds next_offset changed and must not commit.
async function advancePosition(client: pg.PoolClient, p: PositionUpdate): Promise<void> {
  const result =
    p.expected === null
      ? await client.query(
          `INSERT INTO tally.positions (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING`,
          [p.groupId, p.topic, p.partition, p.next],
        )
      : await client.query(
          `UPDATE tally.positions SET next_offset = $5, updated_at = now()
            WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4`,
          [p.groupId, p.topic, p.partition, p.expected, p.next],
        );
  if (result.rowCount !== 1) {
    throw new TallyError(
      'TALLY_FENCED',
      `position of ${p.topic}[${p.partition}] for group ${p.groupId} moved since this consumer read it (expected ${p.expected})`,
    );
  }
}

async function insertDeadLetters(client: pg.PoolClient, rows: readonly DeadLetter[]): Promise<void> {
  await client.query(
    `INSERT INTO tally.dead_letters (project, reason, detail, payload, source, topic, partition, "offset")
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::int[], $8::int8[])`,
    [
      rows.map((r) => r.project),
      rows.map((r) => r.reason),
      rows.map((r) => r.detail),
      rows.map((r) => r.payload),
      rows.map((r) => r.source),
      rows.map((r) => r.topic),
      rows.map((r) => r.partition),
      rows.map((r) => r.offset),
    ],
  );
}

function usersByProject(events: readonly TallyEvent[]): Map<string, Set<string>> {
  const users = new Map<string, Set<string>>();
  for (const e of events) {
    let ids = users.get(e.project);
    if (!ids) users.set(e.project, (ids = new Set()));
    ids.add(e.userId);
  }
  return users;
}
