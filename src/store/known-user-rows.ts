import { LRUCache } from 'lru-cache';

/**
 * The (project, level, bucket, user) rows this process knows to be committed: the user is in that
 * bucket's minute array or bit string (migration 016), so a batch need not send the row again.
 * Most (bucket, user) rows a batch derives are recorded already: a user active in a minute is in
 * that minute, its hour and its day, and every further event of that user in that minute, hour or
 * day derives the same three rows, and each one sent costs PostgreSQL a merge that changes nothing.
 *
 * TRICKY: a row is remembered only after the COMMIT of a batch that sent it for a fresh event
 * (tally.write_events records no other, migrations 014 and 016; rollup-writes.ts's
 * writtenUserRows). Then its user is recorded: that batch added it (the upserts of a bucket's
 * array or bit string wait for any in-progress writer of it and merge into what it committed). A
 * row derived only from events whose key was stored already is not recorded, and must not be
 * remembered: a later fresh event would skip a user that is missing. Retention keeps rollups, so
 * a remembered row stays true, and skipping it only skips a no-op. What does remove users (a
 * project move, `tally.rebuild_user_sets` on a data set) is for projects no process is writing. Restoring the database under a running process would break that assumption, as
 * it would for the user numbers (user-numbers.ts): restart the processes after a restore.
 */
export class KnownUserRows {
  readonly #rows: LRUCache<string, true>;

  constructor(maxRows = 100_000) {
    this.#rows = new LRUCache({ max: maxRows });
  }

  /** `key` from rowKey(). */
  has(key: string): boolean {
    return this.#rows.has(key);
  }

  /** Call only once the transaction that sent these rows has committed. */
  remember(keys: readonly string[]): void {
    for (const k of keys) this.#rows.set(k, true);
  }
}

/** The key of one (project, level, bucket, user) row. */
export function rowKey(project: string, level: number, bucket: number, userId: string): string {
  return `${project}\u0000${level}\u0000${bucket}\u0000${userId}`;
}
