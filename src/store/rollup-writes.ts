import type { TallyEvent } from '../event/types.ts';
import { rowKey, type KnownUserRows } from './known-user-rows.ts';
import { rollupUserRows, type UserRows } from './rollup-deltas.ts';
import { userKey } from './user-numbers.ts';

/** The (bucket, user) rows a batch sends to tally.write_events, as its parallel arrays. */
export interface UserRowArgs extends UserRows {
  /** Each row's user number (user-numbers.ts): PostgreSQL adds it to the minute's array or sets its bit. */
  num: number[];
  /** Row i is derived by the events `event[from[i]:to[i]]` (PostgreSQL's 1-based, inclusive slice). */
  from: number[];
  to: number[];
  /** Ordinals (1-based) into the batch's event arrays. */
  event: number[];
  /** Each row's rowKey(), for known.remember once the transaction has committed. */
  keys: string[];
}

/**
 * The (bucket, user) rows a batch sends to tally.write_events (migrations 014, 016): those its
 * events derive that are not in `known`, each with its user's number and the events deriving it.
 * PostgreSQL adds the user to the minute's array (tally.rollup_minute_users) or sets its bit in
 * the hour's or day's bit string (tally.rollup_user_bits) only when one of those events is fresh:
 * a re-sent event_id may differ from the stored event (time, user, bot flag), and its rows must
 * not count. Bot events (`isBot`, parallel to `events`) derive no rows: bots are in no rollup
 * (migration 012), and neither do the events of a deleted user (a null number, user-numbers.ts):
 * tally.write_events drops them (migration 021).
 *
 * TRICKY: the counters, the page numbers, the minute arrays, the bit strings and the data version
 * are shared by every batch (all batches of a minute add to the same rollup_events rows and minute
 * array, and to the same hour and day rows for an hour and a day), so a batch holds their row
 * locks from its upsert until its COMMIT and any concurrent batch waits for it. tally.write_events
 * upserts them last, right before the visits and COMMIT. All batches take the tables in one
 * order, and each table's rows in the order of their key columns (rollupUserRows, and the ORDER BY
 * of the function's upserts).
 */
export function rollupUserArgs(
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number | null>,
  known: KnownUserRows,
  isBot?: readonly boolean[],
): UserRowArgs {
  const rows = rollupUserRows(events, isBot);
  const out: UserRowArgs = {
    project: [],
    level: [],
    bucket: [],
    userId: [],
    num: [],
    from: [],
    to: [],
    event: [],
    keys: [],
  };
  for (let i = 0; i < rows.project.length; i++) {
    const k = rowKey(rows.project[i], rows.level[i], rows.bucket[i], rows.userId[i]);
    if (known.has(k)) continue;
    const num = numbers.get(userKey(rows.project[i], rows.userId[i]));
    if (num === null) continue;
    if (num === undefined)
      throw new Error(`user ${rows.userId[i]} of project ${rows.project[i]} has no number`);
    out.keys.push(k);
    out.project.push(rows.project[i]);
    out.level.push(rows.level[i]);
    out.bucket.push(rows.bucket[i]);
    out.userId.push(rows.userId[i]);
    out.num.push(num);
    out.from.push(out.event.length + 1);
    for (const e of rows.events[i]) out.event.push(e + 1);
    out.to.push(out.event.length);
  }
  return out;
}

/**
 * The keys of the rows of `users` that exist once the transaction that sent them has committed:
 * those with a fresh event among the events deriving them (`fresh`, one flag per event of the
 * batch, from tally.write_events). A row of non-fresh events only may not exist, so it must not
 * be remembered (known-user-rows.ts), or a later fresh event would skip it.
 */
export function writtenUserRows(users: UserRowArgs, fresh: readonly boolean[]): string[] {
  const written: string[] = [];
  for (let i = 0; i < users.keys.length; i++) {
    for (let j = users.from[i] - 1; j < users.to[i]; j++) {
      if (fresh[users.event[j] - 1]) {
        written.push(users.keys[i]);
        break;
      }
    }
  }
  return written;
}
