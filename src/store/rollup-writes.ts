import type { TallyEvent } from '../event/types.ts';
import { rowKey, type KnownUserRows } from './known-user-rows.ts';
import { compareStrings } from '../util/compare-strings.ts';
import { rollupUserRows, type UserRows } from './rollup-deltas.ts';
import { USERS_PER_CHUNK, userKey } from './user-numbers.ts';

/**
 * The rollup_users rows and user bits a batch sends to tally.write_events (migration 009): the
 * (bucket, user) rows of its events not in `known` (all its events: those whose key turns out to
 * be stored already derive rows that exist already, see the migration), and for each (project, level, bucket, chunk)
 * the bits of those users, to OR into rollup_user_bits, so that it always holds exactly the users
 * of rollup_users (migration 005). The bits are those of every row sent, not only of the rows
 * that turn out new: a row that already existed has its bit set already, and OR-ing it again
 * changes nothing. `sentUserRows`: the keys of the rows sent, for `known.remember` once the
 * transaction has committed. Bot events (`isBot`, parallel to `events`) derive neither rows nor
 * bits: bots are in no rollup (migration 012).
 *
 * TRICKY: the counters, the bit strings and the data version are shared by every batch (all
 * batches of a minute add to the same rollup_events rows, and to the same hour and day rows for
 * an hour and a day), so a batch holds their row locks from its upsert until its COMMIT and any
 * concurrent batch waits for it. tally.write_events upserts them last, right before COMMIT;
 * rollup_users rows are per user and rarely wanted by two batches at once, so they go before.
 * All batches take the tables in one order, and each table's rows in the order of their key
 * columns (rollupUserRows, userBitRows, and the ORDER BY of the function's counters).
 */
export function rollupUserArgs(
  events: readonly TallyEvent[],
  numbers: ReadonlyMap<string, number>,
  known: KnownUserRows,
  isBot?: readonly boolean[],
): { users: UserRows; bits: UserBitRows; sentUserRows: string[] } {
  const users = unknownUserRows(rollupUserRows(events, isBot), known);
  return { users, bits: userBitRows(users, numbers), sentUserRows: users.keys };
}

/** The rows of `users` not in `known`, in the same (key) order, with their keys. */
function unknownUserRows(users: UserRows, known: KnownUserRows): UserRows & { keys: string[] } {
  const out: UserRows & { keys: string[] } = { project: [], level: [], bucket: [], userId: [], keys: [] };
  for (let i = 0; i < users.project.length; i++) {
    const k = rowKey(users.project[i], users.level[i], users.bucket[i], users.userId[i]);
    if (known.has(k)) continue;
    out.keys.push(k);
    out.project.push(users.project[i]);
    out.level.push(users.level[i]);
    out.bucket.push(users.bucket[i]);
    out.userId.push(users.userId[i]);
  }
  return out;
}

interface UserBitRow {
  project: string;
  level: number;
  bucket: number;
  chunk: number;
  bits: Buffer;
}

export interface UserBitRows {
  project: string[];
  level: number[];
  bucket: number[];
  chunk: number[];
  hex: string[];
}

/**
 * The bits of the given (bucket, user) rows of rollup_users: one row per (project, level, bucket,
 * chunk), in that order (strings by code unit) like every rollup upsert.
 */
function userBitRows(users: UserRows, numbers: ReadonlyMap<string, number>): UserBitRows {
  // project → bucket + level (buckets are whole minutes) → chunk; no key string per user.
  const index = new Map<string, Map<number, Map<number, UserBitRow>>>();
  const rows: UserBitRow[] = [];
  for (let i = 0; i < users.project.length; i++) {
    const project = users.project[i];
    const level = users.level[i];
    const bucket = users.bucket[i];
    const num = numbers.get(userKey(project, users.userId[i]));
    if (num === undefined) throw new Error(`user ${users.userId[i]} of project ${project} has no number`);
    const chunk = Math.floor(num / USERS_PER_CHUNK);
    let buckets = index.get(project);
    if (buckets === undefined) {
      buckets = new Map<number, Map<number, UserBitRow>>();
      index.set(project, buckets);
    }
    let chunks = buckets.get(bucket + level);
    if (chunks === undefined) {
      chunks = new Map<number, UserBitRow>();
      buckets.set(bucket + level, chunks);
    }
    let row = chunks.get(chunk);
    if (row === undefined) {
      row = { project, level, bucket, chunk, bits: Buffer.alloc(USERS_PER_CHUNK / 8) };
      chunks.set(chunk, row);
      rows.push(row);
    }
    const bit = num % USERS_PER_CHUNK;
    row.bits[bit >> 3] |= 0x80 >> (bit & 7);
  }
  rows.sort(
    (a, b) =>
      compareStrings(a.project, b.project) || a.level - b.level || a.bucket - b.bucket || a.chunk - b.chunk,
  );
  return {
    project: rows.map((r) => r.project),
    level: rows.map((r) => r.level),
    bucket: rows.map((r) => r.bucket),
    chunk: rows.map((r) => r.chunk),
    hex: rows.map((r) => r.bits.toString('hex')),
  };
}
