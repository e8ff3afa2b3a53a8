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
      `SELECT level || '|' || ${bucket} || '|' || type || '|' || page_url || '|' || count AS k
         FROM tally.rollup_pages WHERE project = $1`,
    ),
    users: await q(
      `SELECT level || '|' || ${bucket} || '|' || user_id AS k FROM tally.rollup_users WHERE project = $1`,
    ),
    // The user bit strings of migration 005: the rollup_users rows whose bit is set, and how many
    // bits are set in all. Both equal to rollup_users' rows means both hold the same users.
    userBits: await q(
      `SELECT u.level || '|' || (extract(epoch from u.bucket) * 1000)::bigint || '|' || u.user_id AS k
         FROM tally.rollup_users u
         JOIN tally.user_numbers n ON n.project = u.project AND n.user_id = u.user_id
        CROSS JOIN LATERAL (
          SELECT get_bit(b.users, n.num % 8192) AS bit FROM tally.rollup_user_bits b
           WHERE b.project = u.project AND b.level = u.level AND b.bucket = u.bucket AND b.chunk = n.num / 8192
          OFFSET 0) b
        WHERE u.project = $1 AND b.bit = 1`,
    ),
    userBitCount: Number(
      (
        await db.query<{ n: string }>(
          'SELECT coalesce(sum(bit_count(users)), 0) AS n FROM tally.rollup_user_bits WHERE project = $1',
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
  assert.deepEqual(stored.users, expected.users, 'rollup_users (minute, hour, day)');
  assert.deepEqual(stored.userBits, expected.users, 'rollup_user_bits has the bit of every rollup_users row');
  assert.equal(stored.userBitCount, expected.users.length, 'rollup_user_bits has no other bits set');
}
