import type { Visit, WebEvent } from '../web-fixtures.ts';
import { Reference, type Question } from '../web-reference.ts';

/**
 * Paths (issue 21) computed from scratch over the rows a test made, written from the contract's
 * text (CONTRACT-21, "Paths"), not from src/query/product/paths.ts. Which events are selected
 * (range, bots, global filters) is issue 20's reference's business (web-reference.ts).
 */

export interface RefPathsQuestion extends Question {
  by: 'page' | 'event_type';
  anchor: string;
  direction: 'next' | 'previous';
  depth: number;
  limit: number;
}

export interface RefPathsAnswer {
  anchors: number;
  levels: { depth: number; items: { path: (string | null)[]; count: number }[]; other: number }[];
}

/**
 * The visit an event belongs to: its user's, of its session key, whose [started_at, ended_at]
 * holds its time (the latest started if several); none when no stored visit does.
 */
function visitOf(e: WebEvent, visits: readonly Visit[]): Visit | undefined {
  let found: Visit | undefined;
  for (const v of visits) {
    if (v.user_id !== e.user_id || v.session_key !== (e.session_id ?? '')) continue;
    if (
      v.started_at <= e.ts &&
      e.ts <= v.ended_at &&
      (found === undefined || v.started_at > found.started_at)
    )
      found = v;
  }
  return found;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function refPaths(
  events: readonly WebEvent[],
  visits: readonly Visit[],
  q: RefPathsQuestion,
): RefPathsAnswer {
  const value = (e: WebEvent) => (q.by === 'page' ? e.path : e.type);
  const byVisit = new Map<Visit, WebEvent[]>();
  for (const e of new Reference(events, visits).selectedEvents(q)) {
    const v = visitOf(e, visits);
    if (v === undefined || value(e) === null) continue;
    byVisit.set(v, [...(byVisit.get(v) ?? []), e]);
  }
  let anchors = 0;
  const counts = Array.from({ length: q.depth }, () => new Map<string, number>());
  for (const list of byVisit.values()) {
    // Events of equal time and value are alike here, so (time, value) orders them enough.
    const seq = list.sort((a, b) => a.ts - b.ts || byString(value(a)!, value(b)!)).map(value);
    for (const [i, v] of seq.entries()) {
      if (v !== q.anchor) continue;
      anchors++;
      for (let d = 1; d <= q.depth; d++) {
        const path = Array.from({ length: d }, (_, k) => {
          const at = q.direction === 'next' ? i + 1 + k : i - 1 - k;
          return at >= 0 && at < seq.length ? seq[at] : null;
        });
        const key = JSON.stringify(path);
        counts[d - 1].set(key, (counts[d - 1].get(key) ?? 0) + 1);
      }
    }
  }
  return {
    anchors,
    levels: counts.map((level, d) => {
      const items = [...level]
        .map(([key, count]) => ({ path: JSON.parse(key) as (string | null)[], count }))
        .sort((a, b) => b.count - a.count || comparePaths(a.path, b.path));
      const listed = items.slice(0, q.limit);
      const other = items.slice(q.limit).reduce((s, x) => s + x.count, 0);
      return { depth: d + 1, items: listed, other };
    }),
  };
}

/** Element by element: strings by `<`, null after every string. */
function comparePaths(a: (string | null)[], b: (string | null)[]): number {
  for (let k = 0; k < a.length; k++) {
    const x = a[k];
    const y = b[k];
    if (x === y) continue;
    if (x === null || y === null) return x === null ? 1 : -1;
    return byString(x, y);
  }
  return 0;
}
