import type pg from 'pg';
import { VERSIONS_CHANNEL } from './data-versions.ts';

/** TALLY_SESSION_TIMEOUT_MIN's default: a gap longer than this many minutes starts a new visit. */
export const DEFAULT_SESSION_TIMEOUT_MIN = 30;

/** The part of a freshly stored event that tally.refresh_sessions needs. */
export interface SessionEventKey {
  project: string;
  userId: string;
  /** Epoch ms, as given to tally.write_events. */
  ts: number;
  sessionId: string | null;
}

/**
 * Recomputes the visits (tally.sessions) that `events`, just inserted into tally.events in the
 * transaction open on `client`, touch (migration 011). tally.write_events does the same as its
 * last statement; this is for callers that store raw rows themselves.
 */
export async function refreshSessions(
  client: pg.ClientBase,
  events: readonly SessionEventKey[],
  timeoutMs: number,
): Promise<void> {
  await client.query(
    'SELECT tally.refresh_sessions($1::text[], $2::text[], $3::float8[], $4::text[], $5::float8)',
    [
      events.map((e) => e.project),
      events.map((e) => e.userId),
      events.map((e) => e.ts),
      events.map((e) => e.sessionId),
      timeoutMs,
    ],
  );
}

/** The projects a rebuild of every project goes through: those that ever stored events. */
export async function projectsWithEvents(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ project: string }>(
    'SELECT project FROM tally.data_versions ORDER BY project COLLATE "C"',
  );
  return rows.map((r) => r.project);
}

/**
 * Deletes and recomputes the visits of `project` from its raw rows, in one transaction, and
 * bumps its data version so no cached answer computed from the old visits is served again.
 * Returns the number of visits stored. Visits that ended before the oldest raw row stay
 * (migration 011). Batches of every project wait at their refresh until it commits.
 */
export async function rebuildSessions(pool: pg.Pool, project: string, timeoutMs: number): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // The version row first, the sessions table second: the writers' lock order (project-move.ts).
    await client.query(
      `WITH v AS (
         INSERT INTO tally.data_versions AS v (project, version) VALUES ($1, 1)
         ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
         RETURNING project, version
       )
       SELECT pg_notify('${VERSIONS_CHANNEL}', version || ' ' || project) FROM v`,
      [project],
    );
    const { rows } = await client.query<{ n: string }>('SELECT tally.rebuild_sessions($1, $2) AS n', [
      project,
      timeoutMs,
    ]);
    await client.query('COMMIT');
    return Number(rows[0].n);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
