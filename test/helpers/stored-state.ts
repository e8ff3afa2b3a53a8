import assert from 'node:assert/strict';
import type pg from 'pg';
import type { OracleEvent } from './oracle.ts';

const UNITS = [60_000, 3_600_000, 86_400_000];

/** What every rollup table must hold for `events` (one project), computed independently of src/. */
export function expectedRollups(events: readonly OracleEvent[]) {
  const byType = new Map<string, number>();
  const byPage = new Map<string, number>();
  const users = new Set<string>();
  const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const e of events) {
    UNITS.forEach((ms, level) => {
      const bucket = Math.floor(e.ts / ms) * ms;
      bump(byType, `${level}|${bucket}|${e.type}`);
      if (e.page_url !== undefined) bump(byPage, `${level}|${bucket}|${e.type}|${e.page_url}`);
      users.add(`${level}|${bucket}|${e.user_id}`);
    });
  }
  return {
    events: [...byType].map(([k, n]) => `${k}|${n}`).sort(),
    pages: [...byPage].map(([k, n]) => `${k}|${n}`).sort(),
    users: [...users].sort(),
  };
}

/** The members of `project`'s user sets ($1) as (level, bucket, user_id) rows named `members`. */
const USER_SETS = `WITH nums AS (
    SELECT 0 AS level, m.bucket, u.num FROM tally.rollup_minute_users m, unnest(m.users) AS u(num)
     WHERE m.project = $1
    UNION ALL
    SELECT b.level, b.bucket, b.chunk * 8192 + g.i FROM tally.rollup_user_bits b, generate_series(0, 8191) AS g(i)
     WHERE b.project = $1 AND get_bit(b.users, g.i) = 1
  ), members AS (
    SELECT x.level, x.bucket, n.user_id FROM nums x
      JOIN tally.user_numbers n ON n.project = $1 AND n.num = x.num
  )`;

/** The rollup tables and the raw table of `project`, in the same string form as `expectedRollups`. */
export async function storedState(db: pg.Pool | pg.Client, project = 'default') {
  const q = async (sql: string) =>
    (await db.query<{ k: string }>(sql, [project])).rows.map((r) => r.k).sort();
  const bucket = `(extract(epoch from bucket) * 1000)::bigint`;
  return {
    events: await q(
      `SELECT level || '|' || ${bucket} || '|' || type || '|' || count AS k FROM tally.rollup_events WHERE project = $1`,
    ),
    pages: await q(
      `SELECT r.level || '|' || ${bucket} || '|' || r.type || '|' || d.page_url || '|' || r.count AS k
         FROM tally.rollup_pages r JOIN tally.page_urls d ON d.id = r.page_id WHERE r.project = $1`,
    ),
    // Who was active in each bucket (migration 016): the minute arrays and the hour and day bit
    // strings, each member decoded to its user through tally.user_numbers.
    users: await q(`${USER_SETS} SELECT level || '|' || ${bucket} || '|' || user_id AS k FROM members`),
    // Every member of every set, numbered user or not: equal to users' length means no number
    // without a user is in a set.
    userBitCount: Number(
      (
        await db.query<{ n: string }>(
          `SELECT (SELECT coalesce(sum(bit_count(users)), 0) FROM tally.rollup_user_bits WHERE project = $1)
                + (SELECT coalesce(sum(cardinality(users)), 0) FROM tally.rollup_minute_users WHERE project = $1) AS n`,
          [project],
        )
      ).rows[0].n,
    ),
    raw: await q(
      `SELECT event_id || '|' || type || '|' || user_id || '|' || (extract(epoch from ts) * 1000)::bigint
              || '|' || coalesce(page_url, '') AS k
         FROM tally.events WHERE project = $1`,
    ),
    eventIds: await q(`SELECT event_id AS k FROM tally.event_ids WHERE project = $1`),
  };
}

/** Number of distinct event ids the project has stored so far (cheap progress probe). */
export async function storedCount(db: pg.Pool | pg.Client, project = 'default'): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    'SELECT count(*) AS n FROM tally.event_ids WHERE project = $1',
    [project],
  );
  return Number(rows[0].n);
}

/**
 * The end of every exactly-once test: all rollups, the raw table and the dedup ledger hold
 * exactly what the oracle's events say: each event once, none missing.
 */
export async function assertExactlyOnce(
  db: pg.Pool | pg.Client,
  events: readonly OracleEvent[],
  project = 'default',
): Promise<void> {
  const stored = await storedState(db, project);
  const expected = expectedRollups(events);
  const expectedRaw = events
    .map((e) => `${e.event_id}|${e.type}|${e.user_id}|${e.ts}|${e.page_url ?? ''}`)
    .sort();
  const { rows } = await db.query<{ n: string; d: string }>(
    'SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM tally.events WHERE project = $1',
    [project],
  );
  assert.equal(Number(rows[0].n), events.length, 'raw rows: one per event');
  assert.equal(Number(rows[0].d), events.length, 'raw rows: event_id unique');
  assert.equal(stored.eventIds.length, events.length, 'dedup ledger: one per event');
  assert.deepEqual(stored.raw, expectedRaw, 'raw table');
  assert.deepEqual(stored.events, expected.events, 'rollup_events (minute, hour, day)');
  assert.deepEqual(stored.pages, expected.pages, 'rollup_pages (minute, hour, day)');
  assert.deepEqual(stored.users, expected.users, 'users of minute arrays and hour and day bits');
  assert.equal(stored.userBitCount, expected.users.length, 'no other member in the user sets');
}
