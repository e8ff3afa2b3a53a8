import type { TallyEvent } from '../event/types.ts';
import { compareStrings } from '../util/compare-strings.ts';
import { LEVELS } from './levels.ts';

/** rollup_users rows (project, level, bucket, user), as parallel arrays. */
export interface UserRows {
  project: string[];
  level: number[];
  bucket: number[];
  userId: string[];
}

interface Row {
  project: string;
  level: number;
  bucket: number;
  userId: string;
}

/**
 * The (bucket, user) rows of rollup_users the events derive, at every level, each once, in one
 * total order, by (project, level, bucket, user) (strings by code unit), so that concurrent
 * batches lock them in the same order. The counters are summed by PostgreSQL from the events
 * actually stored (migration 009); these rows are computed here because the writer skips the
 * rows it knows (known-user-rows.ts) and sets their user bits (rollup-writes.ts).
 *
 * The rows are found through nested maps keyed by the events' own strings, not by a key string
 * built per event: each event derives a row at each of three levels, and a JSON key for each
 * costs CPU and garbage per event on the hot path.
 *
 * `isBot` (parallel to `events`): the events that are bots derive no rows, as they add to no
 * rollup (migration 012); a flag array rather than a filtered copy of the batch.
 */
export function rollupUserRows(events: readonly TallyEvent[], isBot?: readonly boolean[]): UserRows {
  // project → bucket + level (buckets are whole minutes, so this tells the levels of one instant
  // apart) → user.
  const projects = new Map<string, Map<number, Set<string>>>();
  const rows: Row[] = [];
  for (let i = 0; i < events.length; i++) {
    if (isBot?.[i] === true) continue;
    const e = events[i];
    let buckets = projects.get(e.project);
    if (buckets === undefined) {
      buckets = new Map<number, Set<string>>();
      projects.set(e.project, buckets);
    }
    for (const { level, ms } of LEVELS) {
      const bucket = e.ts - (e.ts % ms);
      let users = buckets.get(bucket + level);
      if (users === undefined) {
        users = new Set<string>();
        buckets.set(bucket + level, users);
      }
      if (users.has(e.userId)) continue;
      users.add(e.userId);
      rows.push({ project: e.project, level, bucket, userId: e.userId });
    }
  }
  rows.sort(
    (a, b) =>
      compareStrings(a.project, b.project) ||
      a.level - b.level ||
      a.bucket - b.bucket ||
      compareStrings(a.userId, b.userId),
  );
  return {
    project: rows.map((r) => r.project),
    level: rows.map((r) => r.level),
    bucket: rows.map((r) => r.bucket),
    userId: rows.map((r) => r.userId),
  };
}
