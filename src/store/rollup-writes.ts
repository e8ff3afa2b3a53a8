import type pg from 'pg';
import type { TallyEvent } from '../event/types.ts';
import { VERSIONS_CHANNEL } from './data-versions.ts';
import { rowKey, type KnownUserRows } from './known-user-rows.ts';
import { rollupDeltas, type RollupDeltas } from './rollup-deltas.ts';
import { USERS_PER_CHUNK, userKey } from './user-numbers.ts';

/**
 * Adds the rollup deltas of the events a batch inserted now, inside the batch transaction:
 * first the (bucket, user) rows of rollup_users, then — in ONE statement, the last before
 * COMMIT — the counters of rollup_events and rollup_pages, the user bits of the rows just
 * inserted into rollup_users, and the projects' data versions.
 *
 * TRICKY: the counters, the bit strings and the data version are shared by every batch (all
 * batches of a minute add to the same rollup_events rows, and to the same hour and day rows for
 * an hour and a day), so a batch holds their row locks from its upsert until its COMMIT and any
 * concurrent batch waits for it. Upserting them in one round trip right before COMMIT keeps that
 * window to one statement and the commit's WAL flush; rollup_users rows are per user and
 * rarely wanted by two batches at once, so they go first. All batches run the same statement,
 * so they take the tables in one order, and each table's rows in key order (rollupDeltas).
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
      text: `INSERT INTO tally.rollup_users (project, level, bucket, user_id)
       SELECT p, l, to_timestamp(b / 1000.0), u FROM unnest($1::text[], $2::int2[], $3::float8[], $4::text[]) AS x(p, l, b, u)
       ON CONFLICT DO NOTHING
       RETURNING project, level, (extract(epoch from bucket) * 1000)::float8 AS bucket, user_id`,
      values: [users.project, users.level, users.bucket, users.userId],
    }));
  }
  const bits = userBitRows(newUsers, numbers);
  // Sorted, so concurrent batches for several projects lock the version rows in one order.
  const projects = [...new Set(events.map((e) => e.project))].sort();
  // Named: parsed and planned once per connection instead of once per batch.
  const { rows: versions } = await client.query<{ project: string; version: string | number }>({
    name: 'tally-upsert-shared-rollups',
    text: `WITH by_type AS (
       INSERT INTO tally.rollup_events AS r (project, level, bucket, type, count)
       SELECT p, l, to_timestamp(b / 1000.0), t, c
         FROM unnest($1::text[], $2::int2[], $3::float8[], $4::text[], $5::int8[]) AS x(p, l, b, t, c)
       ON CONFLICT (project, level, bucket, type) DO UPDATE SET count = r.count + excluded.count, updated_at = now()
     ), by_page AS (
       INSERT INTO tally.rollup_pages AS r (project, level, bucket, type, page_url, count)
       SELECT p, l, to_timestamp(b / 1000.0), t, u, c
         FROM unnest($6::text[], $7::int2[], $8::float8[], $9::text[], $10::text[], $11::int8[]) AS x(p, l, b, t, u, c)
       ON CONFLICT (project, level, bucket, type, page_url) DO UPDATE SET count = r.count + excluded.count
     ), user_bits AS (
       INSERT INTO tally.rollup_user_bits AS r (project, level, bucket, chunk, users)
       SELECT p, l, to_timestamp(b / 1000.0), c, ('x' || h)::bit(${USERS_PER_CHUNK})
         FROM unnest($12::text[], $13::int2[], $14::float8[], $15::int4[], $16::text[]) AS x(p, l, b, c, h)
       ON CONFLICT (project, level, bucket, chunk) DO UPDATE SET users = r.users | excluded.users
     ), versions AS (
       -- src/store/data-versions.ts: bumped in the transaction that changes the data.
       INSERT INTO tally.data_versions AS v (project, version)
       SELECT unnest($17::text[]), 1
       ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
       RETURNING project, version
     )
     SELECT project, version, pg_notify('${VERSIONS_CHANNEL}', version || ' ' || project) FROM versions`,
    values: [
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
    ],
  });
  return {
    sentUserRows: users.keys,
    versions: new Map(versions.map((v) => [v.project, Number(v.version)])),
  };
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

/**
 * The bits of the (bucket, user) rows just inserted into rollup_users, so that
 * tally.rollup_user_bits always holds exactly the same users (migration 005). One row per
 * (project, level, bucket, chunk), in key order like every rollup upsert.
 */
function userBitRows(newUsers: readonly NewUserRow[], numbers: ReadonlyMap<string, number>) {
  const chunks = new Map<
    string,
    { project: string; level: number; bucket: number; chunk: number; bits: Buffer }
  >();
  for (const u of newUsers) {
    const num = numbers.get(userKey(u.project, u.user_id));
    if (num === undefined) throw new Error(`user ${u.user_id} of project ${u.project} has no number`);
    const chunk = Math.floor(num / USERS_PER_CHUNK);
    const k = JSON.stringify([u.project, u.level, u.bucket, chunk]);
    let row = chunks.get(k);
    if (!row) {
      row = {
        project: u.project,
        level: u.level,
        bucket: u.bucket,
        chunk,
        bits: Buffer.alloc(USERS_PER_CHUNK / 8),
      };
      chunks.set(k, row);
    }
    const bit = num % USERS_PER_CHUNK;
    row.bits[bit >> 3] |= 0x80 >> (bit & 7);
  }
  const rows = [...chunks.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, r]) => r);
  return {
    project: rows.map((r) => r.project),
    level: rows.map((r) => r.level),
    bucket: rows.map((r) => r.bucket),
    chunk: rows.map((r) => r.chunk),
    hex: rows.map((r) => r.bits.toString('hex')),
  };
}
