import type { TallyEvent } from '../event/types.ts';
import { compareStrings } from '../util/compare-strings.ts';
import { LEVELS } from './levels.ts';

/** (project, level, bucket, user) rows: who was active in which bucket, as parallel arrays. */
export interface UserRows {
  project: string[];
  level: number[];
  bucket: number[];
  userId: string[];
}

/** UserRows with, for each row, the indexes (into the events given) of the events deriving it. */
export interface DerivedUserRows extends UserRows {
  events: number[][];
}

interface Row {
  project: string;
  level: number;
  bucket: number;
  userId: string;
  events: number[];
}

/**
 * The (bucket, user) rows the events derive, at every level, each once, in one
 * total order, by (project, level, bucket, user) (strings by code unit), so that concurrent
 * batches lock them in the same order. The counters are summed by PostgreSQL from the events
 * actually stored (migration 009); these rows are computed here because the writer skips the
 * rows it knows (known-user-rows.ts). Each row comes with the events that derive it, in batch
 * order: PostgreSQL records a row's user only if one of them is fresh (migrations 014, 016).
 *
 * The rows are found through nested maps keyed by the events' own strings, not by a key string
 * built per event: each event derives a row at each of three levels, and a JSON key for each
 * costs CPU and garbage per event on the hot path.
 *
 * `isBot` (parallel to `events`): the events that are bots derive no rows, as they add to no
 * rollup (migration 012); a flag array rather than a filtered copy of the batch.
 */
export function rollupUserRows(events: readonly TallyEvent[], isBot?: readonly boolean[]): DerivedUserRows {
  // project → bucket + level (buckets are whole minutes, so this tells the levels of one instant
  // apart) → user.
  const projects = new Map<string, Map<number, Map<string, Row>>>();
  const rows: Row[] = [];
  for (let i = 0; i < events.length; i++) {
    if (isBot?.[i] === true) continue;
    const e = events[i];
    let buckets = projects.get(e.project);
    if (buckets === undefined) {
      buckets = new Map<number, Map<string, Row>>();
      projects.set(e.project, buckets);
    }
    for (const { level, ms } of LEVELS) {
      const bucket = e.ts - (e.ts % ms);
      let users = buckets.get(bucket + level);
      if (users === undefined) {
        users = new Map<string, Row>();
        buckets.set(bucket + level, users);
      }
      const row = users.get(e.userId);
      if (row !== undefined) {
        row.events.push(i);
        continue;
      }
      const added = { project: e.project, level, bucket, userId: e.userId, events: [i] };
      users.set(e.userId, added);
      rows.push(added);
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
    events: rows.map((r) => r.events),
  };
}
