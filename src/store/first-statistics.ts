import type pg from 'pg';

/** Rows written to a table with no statistics before it is analyzed (FirstStatistics). */
export const FIRST_STATISTICS_MIN_ROWS = 500;
const LOOK_INTERVAL_MS = 1000;

/**
 * Gives PostgreSQL statistics of the tables Tally writes as soon as they hold a few hundred rows,
 * rather than at autovacuum's first look (up to autovacuum_naptime, a minute by default, after
 * its 50-row threshold). Until a table's first ANALYZE the planner only guesses its size and
 * knows nothing of its columns, and the visits' refresh then picks plans that read whole tables:
 * tally.sessions' index on (project, started_at) walking every visit of the project for one user
 * where its primary key finds the user's few, and a day's new partition of tally.events read whole
 * for each batch (issue 24: a new database's first minute, and every day's first minute, as the
 * day's partition is new). Once a table has statistics, autovacuum keeps them as it always does.
 *
 * The writer calls `afterCommit` after each batch; at most once a second one connection looks for
 * the tables of schema tally that were never analyzed (by anyone) and have had at least
 * FIRST_STATISTICS_MIN_ROWS rows written, and analyzes each (SKIP_LOCKED: a table another session
 * analyzes or alters is left to it). It runs beside the batches, never in their transaction, and
 * changes only plans, never a result.
 */
export class FirstStatistics {
  readonly #pool: pg.Pool;
  readonly #onError: (err: unknown) => void;
  #nextLook = 0;
  #looking = false;

  constructor(pool: pg.Pool, onError: (err: unknown) => void) {
    this.#pool = pool;
    this.#onError = onError;
  }

  afterCommit(now = Date.now()): void {
    if (this.#looking || now < this.#nextLook) return;
    this.#nextLook = now + LOOK_INTERVAL_MS;
    this.#looking = true;
    this.analyze()
      .catch(this.#onError)
      .finally(() => {
        this.#looking = false;
      });
  }

  /** One look: analyzes the tables due, returns their names. */
  async analyze(): Promise<string[]> {
    // Partitioned tables hold no rows of their own: never due (autovacuum skips them too).
    const { rows } = await this.#pool.query<{ name: string }>(
      `SELECT format('%I.%I', schemaname, relname) AS name
         FROM pg_stat_user_tables
        WHERE schemaname = 'tally' AND last_analyze IS NULL AND last_autoanalyze IS NULL
          AND n_mod_since_analyze >= $1
        ORDER BY relname`,
      [FIRST_STATISTICS_MIN_ROWS],
    );
    for (const { name } of rows) await this.#pool.query(`ANALYZE (SKIP_LOCKED) ${name}`);
    return rows.map((r) => r.name);
  }
}
