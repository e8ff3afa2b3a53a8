import type pg from 'pg';
import type { Logger } from 'pino';
import { bumpDataVersions } from './data-versions.ts';

/**
 * How long the change feed (tally.model_changes, migration 018) keeps its rows. A reader further
 * behind than this finds its interval incomplete and reloads the project (the gap rule).
 */
export const MODEL_CHANGES_KEEP_MS = 60 * 60_000;

/** How often the roles that write batches prune the feed: rows live at most this much longer. */
export const MODEL_CHANGES_PRUNE_INTERVAL_MS = 5 * 60_000;

export interface ModelChanges {
  /** True when every version in the interval has a feed row, so `users` is all that changed. */
  complete: boolean;
  /** The users whose raw events or visits changed in the interval; empty when not `complete`. */
  users: string[];
}

/**
 * What changed in `project` at the versions after `afterVersion` up to `upToVersion`: the union
 * of the feed rows' users, and whether the interval is complete. Incomplete (a bump that writes
 * no row, rows pruned, `afterVersion` ahead of `upToVersion`) means: reload the project. Read
 * `upToVersion` committed first (every lower version is then committed too, migration 018), and
 * this in the snapshot the reader then reads the users' rows in.
 */
export async function readModelChanges(
  client: Pick<pg.ClientBase, 'query'>,
  project: string,
  afterVersion: number,
  upToVersion: number,
): Promise<ModelChanges> {
  // The users are gathered only when the interval is complete: an uncorrelated subquery (an
  // InitPlan) runs when its value is first needed, so an incomplete interval reads no arrays.
  const { rows } = await client.query<{ complete: boolean; users: string[] }>(
    `WITH c AS (
       SELECT count(*) AS n FROM tally.model_changes
        WHERE project = $1 AND version > $2::int8 AND version <= $3::int8
     )
     SELECT c.n = $3::int8 - $2::int8 AS complete,
            CASE WHEN c.n = $3::int8 - $2::int8
                 THEN ARRAY(SELECT DISTINCT u
                              FROM tally.model_changes m CROSS JOIN unnest(m.user_ids) AS u
                             WHERE m.project = $1 AND m.version > $2::int8 AND m.version <= $3::int8)
                 ELSE '{}'::text[] END AS users
       FROM c`,
    [project, afterVersion, upToVersion],
  );
  return rows[0];
}

/**
 * Bumps the data versions of `projects` (or of every project) without a feed row, so every reader
 * of the feed reloads those projects: for changes made outside tally.write_events (`rebuild`).
 * Call it inside the transaction that changes the data, as bumpDataVersions says.
 */
export async function markModelRebuild(
  db: Pick<pg.ClientBase, 'query'>,
  projects: readonly string[] | 'all',
): Promise<void> {
  await bumpDataVersions(db, projects);
}

/** Deletes the feed rows older than MODEL_CHANGES_KEEP_MS before `now`; returns how many. */
export async function pruneModelChanges(db: Pick<pg.ClientBase, 'query'>, now = Date.now()): Promise<number> {
  const { rowCount } = await db.query(
    'DELETE FROM tally.model_changes WHERE created_at < to_timestamp($1 / 1000.0)',
    [now - MODEL_CHANGES_KEEP_MS],
  );
  return rowCount ?? 0;
}

/**
 * Prunes the feed now and every MODEL_CHANGES_PRUNE_INTERVAL_MS, for the roles that write batches
 * (several processes pruning at once is harmless); returns the function that stops it.
 */
export function pruneModelChangesPeriodically(pool: pg.Pool, logger: Logger): () => void {
  const prune = () =>
    void pruneModelChanges(pool).then(
      (deleted) => logger.debug({ deleted }, 'model change feed pruned'),
      (err: unknown) => logger.warn({ err }, 'pruning the model change feed failed'),
    );
  prune();
  const timer = setInterval(prune, MODEL_CHANGES_PRUNE_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
