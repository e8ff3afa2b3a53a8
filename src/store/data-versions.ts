import type pg from 'pg';

/**
 * The per-project data version behind the query cache: a counter in `tally.data_versions` that
 * every committing batch bumps inside its own transaction.
 *
 * TRICKY: the bump must be transactional with the data. A counter bumped outside the transaction
 * (a sequence's nextval, a Redis INCR before COMMIT) can be seen before the data, and an answer
 * computed from the old data would then be cached under the new version and outlive the commit.
 * A Redis INCR after COMMIT is late instead, and lost whenever the writer cannot reach Redis.
 * Readers take the version first and the data second, so an answer is always stored under a
 * version no newer than the data it was computed from.
 */
export async function bumpDataVersions(client: pg.PoolClient, projects: Iterable<string>): Promise<void> {
  // Sorted, so concurrent batches for several projects lock the rows in one order (no deadlock).
  const sorted = [...new Set(projects)].sort();
  if (sorted.length === 0) return;
  await client.query(
    `INSERT INTO tally.data_versions AS v (project, version)
     SELECT unnest($1::text[]), 1
     ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()`,
    [sorted],
  );
}

/** Reads the current data version of a project (0 before its first commit). */
export class DataVersions {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async current(project: string): Promise<number> {
    const { rows } = await this.#pool.query<{ version: number }>(
      'SELECT version FROM tally.data_versions WHERE project = $1',
      [project],
    );
    return rows[0]?.version ?? 0;
  }
}
