import type { TallyEvent } from '../event/types.ts';
import { levelBucketKey, type KnownRows, type KnownUserRows } from './known-user-rows.ts';
import { LEVELS } from './levels.ts';
import { userKey } from './user-numbers.ts';

/** The (bucket, user) rows a batch sends to tally.write_events, as its parallel arrays. */
export interface UserRowArgs {
  project: string[];
  level: number[];
  bucket: number[];
  userId: string[];
  /** Each row's user number (user-numbers.ts): PostgreSQL adds it to the minute's array or sets its bit. */
  num: number[];
  /** Row i is derived by the events `event[from[i]:to[i]]` (PostgreSQL's 1-based, inclusive slice). */
  from: number[];
  to: number[];
  /** Ordinals (1-based) into the batch's event arrays, each row's in batch order. */
  event: number[];
}

/**
 * The (bucket, user) rows a batch sends to tally.write_events (migrations 014, 016): one per
 * distinct (project, level, bucket, user) its events derive at each level (levels.ts) that is not
 * in `known`, each with its user's number and the events deriving it. PostgreSQL adds the user to
 * the minute's array (tally.rollup_minute_users) or sets its bit in the hour's or day's bit string
 * (tally.rollup_user_bits) only when one of those events is fresh: a re-sent event_id may differ
 * from the stored event (time, user, bot flag), and its rows must not count. Bot events (`isBot`,
 * parallel to `events`) derive no rows: bots are in no rollup (migration 012), and neither do the
 * events of a deleted user (a null number, user-numbers.ts): tally.write_events drops them
 * (migration 021).
 *
 * The rows come in the order their first event and level come in the batch. The order does not
 * matter to PostgreSQL, which groups them and upserts each table's rows in the order of their key
 * columns (the ORDER BY of write_events' upserts), so that concurrent batches lock the shared
 * minute arrays and bit strings in one order.
 *
 * Found through nested maps keyed by the events' own strings, and each row's events gathered by a
 * counting pass, not by an object, an array and a key string per row (issue 24: building and
 * sorting such rows was ~15 % of a processor worker's CPU).
 */
export function rollupUserArgs(
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number | null>,
  known: KnownUserRows,
  isBot?: readonly boolean[],
): UserRowArgs {
  const out: UserRowArgs = {
    project: [],
    level: [],
    bucket: [],
    userId: [],
    num: [],
    from: [],
    to: [],
    event: [],
  };
  // project → levelBucketKey → user → the row's index in `out`, or -1 for none (known, or deleted).
  const seen = new Map<string, Map<number, Map<string, number>>>();
  // The row of each (event, level), -1 for none; and how many events each row has.
  const rowOf = new Int32Array(events.length * LEVELS.length).fill(-1);
  const count: number[] = [];
  for (let i = 0; i < events.length; i++) {
    if (isBot?.[i] === true) continue;
    const e = events[i];
    let buckets = seen.get(e.project);
    if (buckets === undefined) {
      buckets = new Map();
      seen.set(e.project, buckets);
    }
    for (let l = 0; l < LEVELS.length; l++) {
      const { level, ms } = LEVELS[l];
      const bucket = e.ts - (e.ts % ms);
      const key = levelBucketKey(level, bucket);
      let users = buckets.get(key);
      if (users === undefined) {
        users = new Map();
        buckets.set(key, users);
      }
      let row = users.get(e.userId);
      if (row === undefined) {
        row = known.has(e.project, key, e.userId) ? -1 : addRow(out, count, e, level, bucket, numbers);
        users.set(e.userId, row);
      }
      if (row >= 0) {
        rowOf[i * LEVELS.length + l] = row;
        count[row]++;
      }
    }
  }
  // Each row's events as one slice of `event`, in batch order.
  const next = new Array<number>(count.length);
  let at = 0;
  for (let r = 0; r < count.length; r++) {
    out.from.push(at + 1);
    next[r] = at;
    at += count[r];
    out.to.push(at);
  }
  out.event = new Array<number>(at);
  for (let k = 0; k < rowOf.length; k++) {
    const r = rowOf[k];
    if (r >= 0) out.event[next[r]++] = Math.floor(k / LEVELS.length) + 1;
  }
  return out;
}

/** Appends a row for `e` at (level, bucket) and returns its index, or -1 when its user was deleted. */
function addRow(
  out: UserRowArgs,
  count: number[],
  e: TallyEvent,
  level: number,
  bucket: number,
  numbers: ReadonlyMap<string, number | null>,
): number {
  const num = numbers.get(userKey(e.project, e.userId));
  if (num === null) return -1;
  if (num === undefined) throw new Error(`user ${e.userId} of project ${e.project} has no number`);
  out.project.push(e.project);
  out.level.push(level);
  out.bucket.push(bucket);
  out.userId.push(e.userId);
  out.num.push(num);
  count.push(0);
  return out.project.length - 1;
}

/**
 * The rows of `users` that exist once the transaction that sent them has committed: those with a
 * fresh event among the events deriving them (`fresh`, one flag per event of the batch, from
 * tally.write_events), for known.remember. A row of non-fresh events only may not exist, so it
 * must not be remembered (known-user-rows.ts), or a later fresh event would skip it.
 */
export function writtenUserRows(users: UserRowArgs, fresh: readonly boolean[]): KnownRows {
  const written: KnownRows = { project: [], key: [], userId: [] };
  for (let i = 0; i < users.userId.length; i++) {
    for (let j = users.from[i] - 1; j < users.to[i]; j++) {
      if (fresh[users.event[j] - 1]) {
        written.project.push(users.project[i]);
        written.key.push(levelBucketKey(users.level[i], users.bucket[i]));
        written.userId.push(users.userId[i]);
        break;
      }
    }
  }
  return written;
}
