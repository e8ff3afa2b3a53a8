import type { TallyEvent } from '../event/types.ts';

export const LEVELS = [
  { level: 0, ms: 60_000 },
  { level: 1, ms: 3_600_000 },
  { level: 2, ms: 86_400_000 },
] as const;

export interface RollupDeltas {
  events: { project: string[]; level: number[]; bucket: number[]; type: string[]; count: number[] };
  pages: {
    project: string[];
    level: number[];
    bucket: number[];
    type: string[];
    pageUrl: string[];
    count: number[];
  };
  users: { project: string[]; level: number[]; bucket: number[]; userId: string[] };
}

interface Row {
  project: string;
  level: number;
  bucket: number;
  name: string;
  pageUrl: string;
  count: number;
}

/**
 * Folds newly stored events into per-bucket increments for every rollup level. Rows come out
 * sorted by key so that concurrent batches lock rollup rows in the same order.
 */
export function rollupDeltas(events: readonly TallyEvent[]): RollupDeltas {
  const byType = new Map<string, Row>();
  const byPage = new Map<string, Row>();
  const users = new Map<string, Row>();
  for (const e of events) {
    for (const { level, ms } of LEVELS) {
      const bucket = e.ts - (e.ts % ms);
      bump(byType, e.project, level, bucket, e.type, '');
      if (e.pageUrl !== null) bump(byPage, e.project, level, bucket, e.type, e.pageUrl);
      bump(users, e.project, level, bucket, e.userId, '');
    }
  }
  const deltas: RollupDeltas = {
    events: { project: [], level: [], bucket: [], type: [], count: [] },
    pages: { project: [], level: [], bucket: [], type: [], pageUrl: [], count: [] },
    users: { project: [], level: [], bucket: [], userId: [] },
  };
  for (const r of sorted(byType)) {
    deltas.events.project.push(r.project);
    deltas.events.level.push(r.level);
    deltas.events.bucket.push(r.bucket);
    deltas.events.type.push(r.name);
    deltas.events.count.push(r.count);
  }
  for (const r of sorted(byPage)) {
    deltas.pages.project.push(r.project);
    deltas.pages.level.push(r.level);
    deltas.pages.bucket.push(r.bucket);
    deltas.pages.type.push(r.name);
    deltas.pages.pageUrl.push(r.pageUrl);
    deltas.pages.count.push(r.count);
  }
  for (const r of sorted(users)) {
    deltas.users.project.push(r.project);
    deltas.users.level.push(r.level);
    deltas.users.bucket.push(r.bucket);
    deltas.users.userId.push(r.name);
  }
  return deltas;
}

function bump(
  map: Map<string, Row>,
  project: string,
  level: number,
  bucket: number,
  name: string,
  pageUrl: string,
): void {
  // JSON keeps the key unambiguous whatever characters the strings hold.
  const key = JSON.stringify([project, level, bucket, name, pageUrl]);
  const row = map.get(key);
  if (row) row.count += 1;
  else map.set(key, { project, level, bucket, name, pageUrl, count: 1 });
}

function sorted(map: Map<string, Row>): Row[] {
  return [...map.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, row]) => row);
}
