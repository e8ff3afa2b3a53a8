/**
 * From-scratch answers to bench scenario 10's three questions (CONTRACT-21's semantics, written
 * from its text, not from src/ nor from the bench's SQL), over stored events and the visits of
 * the reference sessionizer, in the shapes Tally's REST answers have.
 */
import type { SessionizerEvent, Visit } from '../helpers/sessionizer.ts';

const DAY = 86_400_000;
const WEEK = 7 * DAY;

/** JS string order (`<`), null last: the contract's order of path values. */
function compareValues(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}

/** Users reaching each step of a strict funnel of `steps` (tests on one event), per user. */
export function refFunnel(
  events: readonly SessionizerEvent[],
  range: { from: number; to: number },
  steps: readonly ((e: SessionizerEvent) => boolean)[],
  windowMs: number,
): { steps: { count: number }[] } {
  const byUser = new Map<string, { e: SessionizerEvent; mask: number; i: number }[]>();
  events.forEach((e, i) => {
    if (e.isBot || e.ts < range.from || e.ts >= range.to) return;
    const mask = steps.reduce((m, test, j) => (test(e) ? m | (1 << j) : m), 0);
    const list = byUser.get(e.userId) ?? [];
    list.push({ e, mask, i });
    byUser.set(e.userId, list);
  });
  const counts = steps.map(() => 0);
  for (const seq of byUser.values()) {
    seq.sort((a, b) => a.e.ts - b.e.ts || a.mask - b.mask || a.i - b.i);
    let depth = 0;
    seq.forEach((start, s) => {
      if ((start.mask & 1) === 0) return;
      let reached = 1;
      let at = s;
      for (let j = 1; j < steps.length; j++) {
        let next = -1;
        for (let k = at + 1; k < seq.length; k++) {
          if ((seq[k].mask & (1 << j)) !== 0 && seq[k].e.ts - start.e.ts <= windowMs) {
            next = k;
            break;
          }
        }
        if (next < 0) break;
        reached++;
        at = next;
      }
      depth = Math.max(depth, reached);
    });
    for (let j = 0; j < depth; j++) counts[j]++;
  }
  return { steps: counts.map((count) => ({ count })) };
}

/** The Monday 00:00 UTC on or before `t`: 1970-01-05 was a Monday. */
function mondayOf(t: number): number {
  return t - ((((t - 4 * DAY) % WEEK) + WEEK) % WEEK);
}

/** Weekly retention (UTC) by first seen, any return, `periods` columns. */
export function refRetention(
  events: readonly SessionizerEvent[],
  range: { from: number; to: number },
  periods: number,
): { cohorts: { start: string; users: number; returned: (number | null)[] }[] } {
  const human = events.filter((e) => !e.isBot && e.ts < range.to);
  const first = new Map<string, number>();
  for (const e of human) first.set(e.userId, Math.min(first.get(e.userId) ?? Infinity, e.ts));
  const cohorts: { start: number; users: Set<string>; back: Set<string>[] }[] = [];
  for (let start = mondayOf(range.from); start < range.to; start += WEEK)
    cohorts.push({ start, users: new Set(), back: Array.from({ length: periods }, () => new Set()) });
  const cohortOf = new Map<string, (typeof cohorts)[number]>();
  for (const [user, t] of first) {
    if (t < range.from) continue;
    const c = cohorts.find((x) => x.start <= t && t < x.start + WEEK)!;
    c.users.add(user);
    cohortOf.set(user, c);
  }
  for (const e of human) {
    const c = cohortOf.get(e.userId);
    if (c === undefined) continue;
    const k = Math.floor((e.ts - c.start) / WEEK);
    if (k < periods) c.back[k].add(e.userId);
  }
  return {
    cohorts: cohorts.map((c) => ({
      start: new Date(c.start).toISOString(),
      users: c.users.size,
      returned: c.back.map((s, k) => (c.start + k * WEEK >= range.to ? null : s.size)),
    })),
  };
}

/** Next pages after `anchor` within the visit, to `depth`, `limit` items per depth. */
export function refPaths(
  events: readonly SessionizerEvent[],
  visits: readonly Visit[],
  range: { from: number; to: number },
  q: { anchor: string; depth: number; limit: number },
) {
  const members = new Map<Visit, { path: string; ts: number; i: number }[]>();
  events.forEach((e, i) => {
    if (e.isBot || e.ts < range.from || e.ts >= range.to || e.path === null) return;
    const visit = visits.find(
      (v) =>
        v.userId === e.userId &&
        v.sessionKey === (e.sessionId ?? '') &&
        v.startedAt <= e.ts &&
        e.ts <= v.endedAt,
    );
    if (visit === undefined) return;
    const list = members.get(visit) ?? [];
    list.push({ path: e.path, ts: e.ts, i });
    members.set(visit, list);
  });
  let anchors = 0;
  const counts = Array.from({ length: q.depth }, () => new Map<string, number>());
  for (const seq of members.values()) {
    seq.sort((a, b) => a.ts - b.ts || compareValues(a.path, b.path) || a.i - b.i);
    seq.forEach((node, i) => {
      if (node.path !== q.anchor) return;
      anchors++;
      for (let d = 1; d <= q.depth; d++) {
        const path = Array.from({ length: d }, (_, k) => seq[i + 1 + k]?.path ?? null);
        const key = JSON.stringify(path);
        counts[d - 1].set(key, (counts[d - 1].get(key) ?? 0) + 1);
      }
    });
  }
  const levels = counts.map((m, d) => {
    const all = [...m].map(([key, count]) => ({ path: JSON.parse(key) as (string | null)[], count }));
    all.sort((a, b) => {
      if (a.count !== b.count) return b.count - a.count;
      for (let k = 0; k < a.path.length; k++) {
        const c = compareValues(a.path[k], b.path[k]);
        if (c !== 0) return c;
      }
      return 0;
    });
    const items = all.slice(0, q.limit);
    return { depth: d + 1, items, other: anchors - items.reduce((s, x) => s + x.count, 0) };
  });
  return { anchors, levels };
}
