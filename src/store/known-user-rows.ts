import { LRUCache } from 'lru-cache';

/**
 * The rollup_users rows (project, level, bucket, user) this process knows to be committed, so a
 * batch need not send them again. Most (bucket, user) rows a batch derives already exist: a user
 * active in a minute has one row for that minute, its hour and its day, and every further event
 * of that user in that minute, hour or day derives the same three rows, and each one sent costs
 * PostgreSQL an index probe that only finds the conflict.
 *
 * TRICKY: a row is remembered only after the COMMIT of a batch that sent it for a fresh event
 * (tally.write_events writes no other, migration 014; rollup-writes.ts's writtenUserRows). Then
 * it exists: either that batch inserted it, or its ON CONFLICT DO NOTHING met a row that another
 * transaction had committed (PostgreSQL waits for an in-progress inserter and only skips the row
 * once that one committed). A row derived only from events whose key was stored already is not
 * written, and must not be remembered: a later fresh event would skip a row that is missing. Nothing deletes rollup_users rows (retention keeps rollups), so a
 * remembered row stays true. Skipping it only skips a no-op: its user bit was set by whoever
 * inserted it. Restoring the database under a running process would break that assumption, as
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

/** The key of one rollup_users row. */
export function rowKey(project: string, level: number, bucket: number, userId: string): string {
  return `${project}\u0000${level}\u0000${bucket}\u0000${userId}`;
}
