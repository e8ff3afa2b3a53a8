import type pg from 'pg';
import { TallyError } from '../errors/tally-error.ts';
import { bumpDataVersions } from './data-versions.ts';
import { DAY } from './levels.ts';

/**
 * The tables whose rows belong to one project (migrations 001, 004, 005, 010, 016, 020), in the
 * order a batch transaction writes them, which is the order the move locks them in. The deleted
 * users' tombstones (020) go with the data they keep the users out of, and the audit of deletions
 * and exports with the project it describes.
 */
const MOVED_TABLES = [
  'user_tombstones',
  'event_ids',
  'events',
  'rollup_events',
  'rollup_pages',
  'rollup_minute_users',
  'rollup_user_bits',
  'sessions',
  'user_audit',
] as const;
/** Copied, not moved: see moveProjectData. */
const NUMBER_TABLES = ['user_numbers', 'user_number_counters'] as const;
/**
 * The order the move locks tables in: the writers' own order, so a move and a batch never wait
 * on each other in a cycle. A user-number transaction (user-numbers.ts) takes the counter, then
 * the numbers; a batch transaction (batch-writer.ts, then tally.write_events) takes the dead
 * letters, the keys, the raw rows, then the session settings and the visits (tally.refresh_sessions,
 * after project and per-user advisory locks), then the data version and the shared rollups
 * (migration 024; before it the visits came last). Those last four are listed here in the earlier
 * order, which needs no change: a batch writes the keys before any of them, so a move either waits
 * for the batch at tally.event_ids or holds that table and the batch waits there, holding none of
 * the later ones. The move first takes the project lock 741121 EXCLUSIVE, as a rebuild of the
 * visits does (sessions-store.ts).
 * A user deletion (tally.delete_user, migration 022; user-deletion.ts) writes the same tables in
 * this order, the tombstones where a batch checks them (between the dead letters and the keys,
 * migration 021), and the audit last.
 */
const LOCK_ORDER = [
  'user_number_counters',
  'user_numbers',
  'dead_letters',
  'user_tombstones',
  'event_ids',
  'events',
  'data_versions',
  'rollup_events',
  'rollup_pages',
  'rollup_minute_users',
  'rollup_user_bits',
  'session_settings',
  'sessions',
  'user_audit',
] as const;

export interface ProjectMove {
  from: string;
  to: string;
  /** Events the moved rollups count (day level). */
  events: number;
  /** Rows moved (or copied, for the user numbers) per table. */
  rows: Record<string, number>;
}

/** Events counted in `project`'s rollups (day level: every event counts once there). */
export async function countProjectEvents(db: pg.Pool | pg.PoolClient, project: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    'SELECT coalesce(sum(count), 0) AS n FROM tally.rollup_events WHERE project = $1 AND level = $2',
    [project, DAY.level],
  );
  return Number(rows[0].n);
}

/**
 * Moves every stored row of project `from` into project `to`, which must hold nothing, in one
 * transaction: raw events, dedup keys, rollups, user bits, visits and dead letters. Both projects' data
 * versions are bumped, so no cached answer of either is served again. Throws
 * TALLY_PROJECT_HAS_DATA when `to` holds data, TALLY_PROJECT_EMPTY when `from` holds none.
 *
 * TRICKY: the user numbers (migration 005) are copied, and `from` keeps its own. A running
 * process caches numbers per (project, user) and never re-reads them (user-numbers.ts); were
 * `from`'s numbers gone, its next new users would be numbered again from 0 and share numbers
 * with users it still has cached, merging them in the unique-user bits. Kept, the numbering of
 * `from` stays valid; a number only names a user, so the copies in `from` count nothing.
 *
 * The tables are locked against writes (reads go on) for the move's duration, so no batch can
 * commit rows for `from` between two of its statements.
 */
export async function moveProjectData(pool: pg.Pool, from: string, to: string): Promise<ProjectMove> {
  if (from === to) {
    throw new TallyError('TALLY_PROJECT_HAS_DATA', `cannot move project ${from} into itself`);
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // The projects' lock of batches (shared) and deletions (exclusive), migrations 021 and 022,
    // before any table, as they take it: a deletion waiting on a table the move holds while a
    // batch holding dead letters waits on the deletion would otherwise close a cycle.
    await client.query(
      `SELECT pg_advisory_xact_lock(741121, hashtext(p)) FROM unnest($1::text[]) AS p ORDER BY p COLLATE "C"`,
      [[from, to]],
    );
    const locked = LOCK_ORDER;
    await client.query(`LOCK TABLE ${locked.map((t) => `tally.${t}`).join(', ')} IN EXCLUSIVE MODE`);
    const targetHas = await tablesHolding(client, [...MOVED_TABLES, ...NUMBER_TABLES], to);
    if (targetHas.length > 0) {
      throw new TallyError(
        'TALLY_PROJECT_HAS_DATA',
        `project ${to} already holds data (${targetHas.join(', ')}); move into a new project name instead, merging is not supported`,
      );
    }
    if ((await tablesHolding(client, MOVED_TABLES, from)).length === 0) {
      throw new TallyError('TALLY_PROJECT_EMPTY', `project ${from} holds no data to move`);
    }
    const events = await countProjectEvents(client, from);
    const rows: Record<string, number> = {};
    for (const table of [...MOVED_TABLES, 'dead_letters']) {
      const result = await client.query(`UPDATE tally.${table} SET project = $2 WHERE project = $1`, [
        from,
        to,
      ]);
      rows[table] = result.rowCount ?? 0;
    }
    // The timeout `from`'s visits were built with goes with them (migration 011); a row of `to`
    // (a rebuild of it while empty) describes no visit.
    await client.query('DELETE FROM tally.session_settings WHERE project = $1', [to]);
    await client.query('UPDATE tally.session_settings SET project = $2 WHERE project = $1', [from, to]);
    rows.user_numbers =
      (
        await client.query(
          'INSERT INTO tally.user_numbers (project, user_id, num) SELECT $2, user_id, num FROM tally.user_numbers WHERE project = $1',
          [from, to],
        )
      ).rowCount ?? 0;
    rows.user_number_counters =
      (
        await client.query(
          'INSERT INTO tally.user_number_counters (project, next) SELECT $2, next FROM tally.user_number_counters WHERE project = $1',
          [from, to],
        )
      ).rowCount ?? 0;
    // data-versions.ts: bumped in the transaction that changes the data, and announced on commit.
    await bumpDataVersions(client, [from, to]);
    await client.query('COMMIT');
    return { from, to, events, rows };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** The tables among `tables` that hold at least one row of `project`. */
async function tablesHolding(
  client: pg.PoolClient,
  tables: readonly string[],
  project: string,
): Promise<string[]> {
  const { rows } = await client.query<Record<string, boolean>>(
    `SELECT ${tables.map((t) => `EXISTS (SELECT 1 FROM tally.${t} WHERE project = $1) AS ${t}`).join(', ')}`,
    [project],
  );
  return tables.filter((t) => rows[0][t]);
}
