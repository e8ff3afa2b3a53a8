import { LRUCache } from 'lru-cache';
import type pg from 'pg';

/** Users per row of tally.rollup_user_bits (bit(8192)). */
export const USERS_PER_CHUNK = 8192;

/**
 * A small number per (project, user_id), dense within a project, for the user bit strings of
 * migration 005. A number never changes once given, so numbers are cached in-process and a batch
 * of known users costs no query. New users get theirs in a short transaction of its own, outside
 * the batch transaction: a number given to a batch that then rolls back is harmless (it only
 * names the user), and the per-project counter row is locked for milliseconds, not for a batch.
 *
 * A deleted user (a tombstone, migration 020) gets no number: its row holds the id in plain text,
 * and a deletion removed it. Its events are dropped by tally.write_events, so they need none.
 */
export class UserNumbers {
  readonly #pool: pg.Pool;
  /** DELETED for a user with a tombstone: tombstones are kept for good, so this stays true. */
  readonly #cache: LRUCache<string, number>;

  constructor(pool: pg.Pool, cacheSize = 200_000) {
    this.#pool = pool;
    this.#cache = new LRUCache({ max: cacheSize });
  }

  /**
   * The numbers of the given users of each project, keyed by `userKey(project, userId)`; null for
   * a deleted user. `hashOf` gives a user's keyed hash (user-hash.ts), which its tombstone holds.
   */
  async resolve(
    users: ReadonlyMap<string, ReadonlySet<string>>,
    hashOf: (userId: string) => Buffer,
  ): Promise<Map<string, number | null>> {
    const numbers = new Map<string, number | null>();
    for (const [project, ids] of users) {
      const missing: string[] = [];
      for (const id of ids) {
        const num = this.#cache.get(userKey(project, id));
        if (num === undefined) missing.push(id);
        else numbers.set(userKey(project, id), num === DELETED ? null : num);
      }
      if (missing.length === 0) continue;
      let found = await this.#lookup(project, missing);
      const unnumbered = missing.filter((id) => !found.has(id));
      if (unnumbered.length > 0) {
        await this.#assign(project, unnumbered, unnumbered.map(hashOf));
        found = new Map([...found, ...(await this.#lookup(project, unnumbered))]);
      }
      for (const id of missing) {
        // Not found after #assign: it found the user's tombstone.
        const num = found.get(id) ?? DELETED;
        this.#cache.set(userKey(project, id), num);
        numbers.set(userKey(project, id), num === DELETED ? null : num);
      }
    }
    return numbers;
  }

  async #lookup(project: string, ids: string[]): Promise<Map<string, number>> {
    const { rows } = await this.#pool.query<{ user_id: string; num: number }>(
      'SELECT user_id, num FROM tally.user_numbers WHERE project = $1 AND user_id = ANY($2::text[])',
      [project, ids],
    );
    return new Map(rows.map((r) => [r.user_id, r.num]));
  }

  // TRICKY: the counter row serialises concurrent assigners of a project, and the insert runs under
  // that lock, so a user numbered meanwhile by another process is seen as a conflict and kept; its
  // number wins and ours stays unused (a hole, harmless). The lookup after COMMIT reads the winner.
  // The project's lock 741121, shared as in tally.write_events (migration 021), comes first: a
  // deletion holds it exclusively, so a user is numbered either before a deletion begins (which then
  // deletes the row) or after it committed, when the tombstone check (a later statement, so a later
  // snapshot) sees its tombstone. Without it a number given during the deletion would survive it.
  async #assign(project: string, ids: string[], hashes: Buffer[]): Promise<void> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock_shared(741121, hashtext($1))', [project]);
      const { rows: alive } = await client.query<{ ids: string[] | null }>(
        `SELECT array_agg(x.u ORDER BY x.o) AS ids
           FROM unnest($2::text[], $3::bytea[]) WITH ORDINALITY AS x(u, h, o)
          WHERE NOT EXISTS (SELECT 1 FROM tally.user_tombstones t WHERE t.project = $1 AND t.user_hash = x.h)`,
        [project, ids, hashes],
      );
      const numbered = alive[0].ids ?? [];
      if (numbered.length > 0) await this.#number(client, project, numbered);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async #number(client: pg.PoolClient, project: string, ids: string[]): Promise<void> {
    await client.query(
      'INSERT INTO tally.user_number_counters (project, next) VALUES ($1, 0) ON CONFLICT DO NOTHING',
      [project],
    );
    const { rows } = await client.query<{ first: number }>(
      `UPDATE tally.user_number_counters SET next = next + $2 WHERE project = $1 RETURNING next - $2 AS first`,
      [project, ids.length],
    );
    await client.query(
      `INSERT INTO tally.user_numbers (project, user_id, num)
       SELECT $1, u, $3::int + (o - 1)::int FROM unnest($2::text[]) WITH ORDINALITY AS x(u, o)
       ON CONFLICT DO NOTHING`,
      [project, ids, rows[0].first],
    );
  }
}

/** The cached "number" of a deleted user. */
const DELETED = -1;

export function userKey(project: string, userId: string): string {
  return `${project}\u0000${userId}`;
}
