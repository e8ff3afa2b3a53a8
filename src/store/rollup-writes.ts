import type pg from 'pg';
import type { TallyEvent } from '../event/types.ts';
import { VERSIONS_CHANNEL } from './data-versions.ts';
import { rowKey, type KnownUserRows } from './known-user-rows.ts';
import { compareStrings } from '../util/compare-strings.ts';
import { rollupDeltas, type RollupDeltas } from './rollup-deltas.ts';
import { USERS_PER_CHUNK, userKey } from './user-numbers.ts';

/**
 * Adds the rollup deltas of the events a batch inserted now, inside the batch transaction:
 * first the (bucket, user) rows of rollup_users, then — in ONE statement, the last before
 * COMMIT — the projects' data versions (PostgreSQL runs that CTE first: the main query reads
 * it), the counters of rollup_events and rollup_pages and the user bits of the rows just
 * inserted into rollup_users.
 *
 * TRICKY: the counters, the bit strings and the data version are shared by every batch (all
 * batches of a minute add to the same rollup_events rows, and to the same hour and day rows for
 * an hour and a day), so a batch holds their row locks from its upsert until its COMMIT and any
 * concurrent batch waits for it. Upserting them in one round trip right before COMMIT keeps that
 * window to one statement and the commit's WAL flush; rollup_users rows are per user and
 * rarely wanted by two batches at once, so they go first. All batches take the tables in one
 * order (see newBatchRollups for the one-statement write), and each table's rows in the order
 * of their key columns (rollupDeltas, userBitRows).
 *
 * rollup_users rows in `known` are not sent (see known-user-rows.ts). Returns the keys of the
 * rows sent, for `known.remember` once the transaction has committed, and the projects' new data
 * versions (each bump also NOTIFYs them, see data-versions.ts).
 */
export async function upsertRollups(
  client: pg.PoolClient,
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number>,
  known: KnownUserRows,
): Promise<{ sentUserRows: string[]; versions: Map<string, number> }> {
  if (events.length === 0) return { sentUserRows: [], versions: new Map() };
  const d = rollupDeltas(events);
  const users = unknownUserRows(d.users, known);
  let newUsers: NewUserRow[] = [];
  if (users.keys.length > 0) {
    ({ rows: newUsers } = await client.query<NewUserRow>({
      name: 'tally-insert-rollup-users',
      text: `${insertRollupUsers(1)}
       RETURNING project, level, (extract(epoch from bucket) * 1000)::float8 AS bucket, user_id`,
      values: [users.project, users.level, users.bucket, users.userId],
    }));
  }
  const bits = userBitRows(newUsers, numbers);
  // Named: parsed and planned once per connection instead of once per batch.
  const { rows: versions } = await client.query<{ project: string; version: string | number }>({
    name: 'tally-upsert-shared-rollups',
    text: `WITH ${sharedRollupCtes(1)}
     SELECT project, version, ${NOTIFY_VERSION} FROM versions`,
    values: sharedRollupValues(d, bits, events),
  });
  return {
    sentUserRows: users.keys,
    versions: new Map(versions.map((v) => [v.project, Number(v.version)])),
  };
}

/**
 * upsertRollups for a batch whose events are all new, as CTEs of the one-statement write
 * (batch-writer.ts) with parameters from `$at` on: `new_users` inserts the (bucket, user) rows
 * not in `known`, then sharedRollupCtes, whose version bump first checks `gate` (an SQL
 * condition that raises an error to abort the statement). The bits are those of every row
 * sent, not only of the rows that turn out new: a row that already existed has its bit set
 * already, and OR-ing it again changes nothing.
 *
 * TRICKY: the statement must take its locks in the order of the long way (dedup keys and raw
 * rows, then rollup_users, then the shared rows), or a batch taking it and one taking the long
 * way can deadlock; and the shared rows, which every concurrent batch wants, must come last.
 * PostgreSQL runs a CTE when something first reads it and the unread ones after the main query,
 * so the reads chain them: the main query reads `versions`, whose WHERE (evaluated once, before
 * any row is inserted) runs `gate`, which reads the keys (then the raw rows), and only then
 * reads `new_users`, in a CASE so that the order holds; the counters and bits come last. Not in
 * new_users' own WHERE: a condition with a volatile function is checked per row, and with no
 * row to insert it would never be checked. This order is the executor's behaviour, not
 * documented (the manual calls the order of data-modifying CTEs unpredictable): the
 * concurrent-batches test in test/store/batch-writer.integration.test.ts mixes both ways and
 * would deadlock if a PostgreSQL version changed it, and the order is checked with triggers there
 * and in the compatibility suite (another PostgreSQL version).
 */
export function newBatchRollups(
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number>,
  known: KnownUserRows,
  at: number,
  gate: string,
): { ctes: string; values: unknown[]; sentUserRows: string[] } {
  const d = rollupDeltas(events);
  const users = unknownUserRows(d.users, known);
  const sent = users.project.map((project, i) => ({
    project,
    level: users.level[i],
    bucket: users.bucket[i],
    user_id: users.userId[i],
  }));
  return {
    ctes: `new_users AS (
       ${insertRollupUsers(at)}
       RETURNING 1
     ), ${sharedRollupCtes(at + 4, `CASE WHEN ${gate} THEN (SELECT count(*) FROM new_users) >= 0 END`)}`,
    values: [
      users.project,
      users.level,
      users.bucket,
      users.userId,
      ...sharedRollupValues(d, userBitRows(sent, numbers), events),
    ],
    sentUserRows: users.keys,
  };
}

/** Inserts the (bucket, user) rows of rollup_users given from `$at` on (4 arrays), skipping those stored. */
function insertRollupUsers(at: number): string {
  const $ = (k: number) => `$${at + k}`;
  return `INSERT INTO tally.rollup_users (project, level, bucket, user_id)
       SELECT p, l, to_timestamp(b / 1000.0), u FROM unnest(${$(0)}::text[], ${$(1)}::int2[], ${$(2)}::float8[], ${$(3)}::text[]) AS x(p, l, b, u)
       ON CONFLICT DO NOTHING`;
}

/** Notifies the new data version of each row of the `versions` CTE (see data-versions.ts). */
export const NOTIFY_VERSION = `pg_notify('${VERSIONS_CHANNEL}', version || ' ' || project)`;

/**
 * The CTEs that add a batch's counters, page counters and user bits, and bump its projects' data
 * versions (`versions` returns project and version), with parameters from `$at` on, in the order
 * of sharedRollupValues. `versionsAfter`: an SQL condition the version bump waits for.
 */
function sharedRollupCtes(at: number, versionsAfter = 'true'): string {
  const $ = (k: number) => `$${at + k}`;
  return `by_type AS (
       INSERT INTO tally.rollup_events AS r (project, level, bucket, type, count)
       SELECT p, l, to_timestamp(b / 1000.0), t, c
         FROM unnest(${$(0)}::text[], ${$(1)}::int2[], ${$(2)}::float8[], ${$(3)}::text[], ${$(4)}::int8[]) AS x(p, l, b, t, c)
       ON CONFLICT (project, level, bucket, type) DO UPDATE SET count = r.count + excluded.count, updated_at = now()
     ), by_page AS (
       INSERT INTO tally.rollup_pages AS r (project, level, bucket, type, page_url, count)
       SELECT p, l, to_timestamp(b / 1000.0), t, u, c
         FROM unnest(${$(5)}::text[], ${$(6)}::int2[], ${$(7)}::float8[], ${$(8)}::text[], ${$(9)}::text[], ${$(10)}::int8[]) AS x(p, l, b, t, u, c)
       ON CONFLICT (project, level, bucket, type, page_url) DO UPDATE SET count = r.count + excluded.count
     ), user_bits AS (
       INSERT INTO tally.rollup_user_bits AS r (project, level, bucket, chunk, users)
       SELECT p, l, to_timestamp(b / 1000.0), c, ('x' || h)::bit(${USERS_PER_CHUNK})
         FROM unnest(${$(11)}::text[], ${$(12)}::int2[], ${$(13)}::float8[], ${$(14)}::int4[], ${$(15)}::text[]) AS x(p, l, b, c, h)
       ON CONFLICT (project, level, bucket, chunk) DO UPDATE SET users = r.users | excluded.users
     ), versions AS (
       -- src/store/data-versions.ts: bumped in the transaction that changes the data.
       INSERT INTO tally.data_versions AS v (project, version)
       SELECT unnest(${$(16)}::text[]), 1 WHERE ${versionsAfter}
       ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
       RETURNING project, version
     )`;
}

/** The parameters of sharedRollupCtes: 17 arrays. */
function sharedRollupValues(d: RollupDeltas, bits: UserBitRows, events: readonly TallyEvent[]): unknown[] {
  // Sorted, so concurrent batches for several projects lock the version rows in one order.
  const projects = [...new Set(events.map((e) => e.project))].sort();
  return [
    d.events.project,
    d.events.level,
    d.events.bucket,
    d.events.type,
    d.events.count,
    d.pages.project,
    d.pages.level,
    d.pages.bucket,
    d.pages.type,
    d.pages.pageUrl,
    d.pages.count,
    bits.project,
    bits.level,
    bits.bucket,
    bits.chunk,
    bits.hex,
    projects,
  ];
}

/** The rows of `users` not in `known`, in the same (key) order, with their keys. */
function unknownUserRows(users: RollupDeltas['users'], known: KnownUserRows) {
  const out = {
    project: [] as string[],
    level: [] as number[],
    bucket: [] as number[],
    userId: [] as string[],
  };
  const keys: string[] = [];
  for (let i = 0; i < users.project.length; i++) {
    const k = rowKey(users.project[i], users.level[i], users.bucket[i], users.userId[i]);
    if (known.has(k)) continue;
    keys.push(k);
    out.project.push(users.project[i]);
    out.level.push(users.level[i]);
    out.bucket.push(users.bucket[i]);
    out.userId.push(users.userId[i]);
  }
  return { ...out, keys };
}

interface NewUserRow {
  project: string;
  level: number;
  bucket: number;
  user_id: string;
}

interface UserBitRow {
  project: string;
  level: number;
  bucket: number;
  chunk: number;
  bits: Buffer;
}

interface UserBitRows {
  project: string[];
  level: number[];
  bucket: number[];
  chunk: number[];
  hex: string[];
}

/**
 * The bits of the given (bucket, user) rows of rollup_users (those just inserted, or in the
 * one-statement write all those sent), so that tally.rollup_user_bits always holds exactly the
 * same users (migration 005). One row per (project, level, bucket, chunk), in that order
 * (strings by code unit) like every rollup upsert.
 */
function userBitRows(newUsers: readonly NewUserRow[], numbers: ReadonlyMap<string, number>): UserBitRows {
  // project → bucket + level (buckets are whole minutes) → chunk; no key string per user.
  const index = new Map<string, Map<number, Map<number, UserBitRow>>>();
  const rows: UserBitRow[] = [];
  for (const u of newUsers) {
    const num = numbers.get(userKey(u.project, u.user_id));
    if (num === undefined) throw new Error(`user ${u.user_id} of project ${u.project} has no number`);
    const chunk = Math.floor(num / USERS_PER_CHUNK);
    let buckets = index.get(u.project);
    if (buckets === undefined) {
      buckets = new Map<number, Map<number, UserBitRow>>();
      index.set(u.project, buckets);
    }
    let chunks = buckets.get(u.bucket + u.level);
    if (chunks === undefined) {
      chunks = new Map<number, UserBitRow>();
      buckets.set(u.bucket + u.level, chunks);
    }
    let row = chunks.get(chunk);
    if (row === undefined) {
      row = {
        project: u.project,
        level: u.level,
        bucket: u.bucket,
        chunk,
        bits: Buffer.alloc(USERS_PER_CHUNK / 8),
      };
      chunks.set(chunk, row);
      rows.push(row);
    }
    const bit = num % USERS_PER_CHUNK;
    row.bits[bit >> 3] |= 0x80 >> (bit & 7);
  }
  rows.sort(
    (a, b) =>
      compareStrings(a.project, b.project) || a.level - b.level || a.bucket - b.bucket || a.chunk - b.chunk,
  );
  return {
    project: rows.map((r) => r.project),
    level: rows.map((r) => r.level),
    bucket: rows.map((r) => r.bucket),
    chunk: rows.map((r) => r.chunk),
    hex: rows.map((r) => r.bits.toString('hex')),
  };
}
