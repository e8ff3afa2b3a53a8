import type pg from 'pg';

/** What a store needs to read: a pool, or one client holding a snapshot. */
export type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Runs `read` on one client inside a read-only REPEATABLE READ transaction, so every statement
 * of one answer (rows, total, visits) sees the same commits: without it, each pool query takes
 * its own snapshot and a batch committed in between makes a row exceed its total.
 */
export async function readSnapshot<T>(pool: pg.Pool, read: (db: Queryable) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const result = await read(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    // A client whose ROLLBACK fails is broken: destroy it rather than return it to the pool.
    await client.query('ROLLBACK').then(
      () => client.release(),
      (rollbackErr: unknown) => client.release(rollbackErr instanceof Error ? rollbackErr : true),
    );
    throw err;
  }
}
