import type pg from 'pg';
import { DAY } from './levels.ts';

export interface DeadLetterSummary {
  total: number;
  unreplayed: number;
  lastAt: Date | null;
}

/** The dead letters a project's readers see: its own and those with no project (unparseable). */
export async function deadLetterSummary(pool: pg.Pool, project: string): Promise<DeadLetterSummary> {
  const { rows } = await pool.query<{ total: string; unreplayed: string; last_at: Date | null }>(
    `SELECT count(*) AS total, count(*) FILTER (WHERE replayed_at IS NULL) AS unreplayed,
            max(received_at) AS last_at
       FROM tally.dead_letters WHERE project = $1 OR project IS NULL`,
    [project],
  );
  return { total: Number(rows[0].total), unreplayed: Number(rows[0].unreplayed), lastAt: rows[0].last_at };
}

/**
 * When a commit last stored events of `project`, in any process. Every such commit touches the
 * day-level rollup: a small index range per project, which also sees commits made by other
 * processes (distributed mode) and before a restart.
 */
export async function lastCommitAt(pool: pg.Pool, project: string): Promise<Date | null> {
  const { rows } = await pool.query<{ t: Date | null }>(
    'SELECT max(updated_at) AS t FROM tally.rollup_events WHERE project = $1 AND level = $2',
    [project, DAY.level],
  );
  return rows[0]?.t ?? null;
}
