import type pg from 'pg';

/** Memory for one answer's sorts and hash tables (measured: 4 MB spills a month's visits to disk). */
export const WORK_MEM = '64MB';

/** Opens a read-only REPEATABLE READ transaction (one snapshot) with the answers' work_mem. */
export const BEGIN_SNAPSHOT = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL work_mem = '${WORK_MEM}'`;

/** What a store needs to read: a pool, or one client holding a snapshot. */
export type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Runs `read` on one client inside a read-only REPEATABLE READ transaction, so every statement
 * of one answer (rows, total, visits) sees the same commits: without it, each pool query takes
 * its own snapshot and a batch committed in between makes a row exceed its total.
 */
export async function readSnapshot<T>(pool: pg.Pool, read: (db: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // Readers may start statements together (Promise.all); one client runs them in turn, and
  // queueing them here keeps pg from its deprecated overlapping client.query() calls.
  const send = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  let last: Promise<unknown> = Promise.resolve();
  const query = (...args: unknown[]) => {
    const run = last.then(() => send(...args));
    last = run.catch(() => undefined);
    return run;
  };
  try {
    // work_mem: the scans' hash tables and the median's sort stay in memory (QUERY_PLANS.md).
    await client.query(BEGIN_SNAPSHOT);
    const result = await read({ query } as Queryable);
    await last;
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    await last;
    // A client whose ROLLBACK fails is broken: destroy it rather than return it to the pool.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (rollbackErr: unknown) => client.release(rollbackErr instanceof Error ? rollbackErr : true),
    );
    throw err;
  }
}
