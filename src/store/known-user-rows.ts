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
 * project move, `tally.rebuild_user_sets` on a data set) is for projects no process is writing.
 * Restoring the database under a running process would break that assumption, as it would for
 * the user numbers (user-numbers.ts): restart the processes after a restore.
 *
 * The rows are kept as a set of users per (project, bucket key) (levelBucketKey), so that a batch
 * asks about each of its rows without building a key string per event (issue 24: key strings and
 * an LRU entry per row were ~5 % of a processor worker's CPU). Past `maxRows` the buckets written
 * to least recently are forgotten whole, until at most `maxRows` are left; forgetting only ever
 * makes a batch send a row again.
 */
export class KnownUserRows {
  readonly #projects = new Map<string, Map<number, Set<string>>>();
  /** Each bucket's users, in the order the buckets were last written to, oldest first. */
  readonly #recency = new Map<Set<string>, { project: string; key: number }>();
  readonly #maxRows: number;
  #size = 0;

  constructor(maxRows = 100_000) {
    this.#maxRows = maxRows;
  }

  /** How many rows are remembered: at most maxRows once remember() returns. */
  get size(): number {
    return this.#size;
  }

  /** `key`: levelBucketKey(level, bucket). */
  has(project: string, key: number, userId: string): boolean {
    return this.#projects.get(project)?.get(key)?.has(userId) ?? false;
  }

  /** Call only once the transaction that sent these rows has committed. */
  remember(rows: KnownRows): void {
    const written = new Set<Set<string>>();
    for (let i = 0; i < rows.userId.length; i++) {
      const users = this.#bucket(rows.project[i], rows.key[i]);
      written.add(users);
      if (!users.has(rows.userId[i])) {
        users.add(rows.userId[i]);
        this.#size++;
      }
    }
    for (const users of written) {
      const at = this.#recency.get(users)!;
      this.#recency.delete(users);
      this.#recency.set(users, at);
    }
    // The buckets just written to are last in the order, so they go last; but they go too when
    // they alone are over the bound (a busy project's day), or memory would grow with it.
    for (const [oldest, at] of this.#recency) {
      if (this.#size <= this.#maxRows) break;
      this.#recency.delete(oldest);
      this.#projects.get(at.project)!.delete(at.key);
      this.#size -= oldest.size;
    }
  }

  /** The users of one bucket, created (and put last in the recency order) if new. */
  #bucket(project: string, key: number): Set<string> {
    let buckets = this.#projects.get(project);
    if (buckets === undefined) {
      buckets = new Map();
      this.#projects.set(project, buckets);
    }
    let users = buckets.get(key);
    if (users === undefined) {
      users = new Set();
      buckets.set(key, users);
      this.#recency.set(users, { project, key });
    }
    return users;
  }
}

/** Rows to remember, as parallel arrays (rollup-writes.ts's writtenUserRows). */
export interface KnownRows {
  project: string[];
  /** levelBucketKey(level, bucket). */
  key: number[];
  userId: string[];
}

/**
 * One number for a (level, bucket): buckets are whole minutes (multiples of 60,000 ms) and levels
 * are 0–2 (levels.ts), so the sum tells the minute, hour and day that start at one instant apart.
 */
export function levelBucketKey(level: number, bucket: number): number {
  return bucket + level;
}
