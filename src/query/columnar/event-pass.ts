import type { CodeFilter } from './compile-filters.ts';
import { KEY, type KeySpace, type ScanColumns, type ScanSums } from './scan.ts';
import { PASS, SELECTED, addVisit, bucketOf } from './visit-pass.ts';

export interface EventPass {
  /** The users whose events this pass reads: [u0, u1), or `only` when given. */
  u0: number;
  u1: number;
  /** Just these users (ascending, within [u0, u1)): those a digest left to the events. */
  only?: Uint32Array;
  from: number;
  to: number;
  botWant: number;
  /** Event-level filters. */
  filters: readonly CodeFilter[];
  space: KeySpace;
  /** The event_type code of page_view (-1: none). */
  pageView: number;
}

/**
 * Events, page views and visitors per key, keyed by the event's own column or not at all, with
 * no visit-level filter: the tight loop of most questions, which never reads the event's visit.
 * TRICKY: a user's events are contiguous (model.ts), so "last user counted under this key" counts
 * each (key, user) once without a set of pairs.
 */
export function countEventsByOwnKey(c: ScanColumns, p: EventPass, sums: ScanSums): void {
  const { ts, isBot, typeCodes, userEvents: users } = c;
  const { from, to, botWant, filters, pageView } = p;
  const keyCodes = p.space.kind === KEY.eventCode ? p.space.codes : undefined;
  const nf = filters.length;
  const { events, pageViews, visitors } = sums;
  const K = sums.keys;
  const userStamp = new Int32Array(K).fill(-1);
  let lastUser = -1;
  const only = p.only;
  const n = only === undefined ? p.u1 - p.u0 : only.length;
  for (let x = 0; x < n; x++) {
    const u = only === undefined ? p.u0 + x : only[x];
    const end = users[u + 1];
    for (let i = users[u]; i < end; i++) {
      const t = ts[i];
      if (t < from || t >= to || (botWant >= 0 && isBot[i] !== botWant)) continue;
      let ok = true;
      for (let j = 0; j < nf && ok; j++) ok = filters[j].pass[filters[j].codes[i]] !== 0;
      if (!ok) continue;
      const k = keyCodes === undefined ? 0 : keyCodes[i];
      events[k]++;
      if (typeCodes[i] === pageView) pageViews[k]++;
      if (userStamp[k] !== u) {
        userStamp[k] = u;
        visitors[k]++;
      }
      if (lastUser !== u) {
        lastUser = u;
        visitors[K]++;
      }
    }
  }
}

/**
 * The general pass: events selected by every filter (visit-level ones on the event's visit), and,
 * with `members`, the counted visits that hold a selected-as-member event (in range, event-level
 * filters pass; bots are the visit's), each once per key of such events. Returns how many
 * durations it wrote.
 */
export function countEventsAndMembers(
  c: ScanColumns,
  p: EventPass,
  state: Uint8Array,
  noVisitPasses: boolean,
  countEvents: boolean,
  members: boolean,
  sums: ScanSums,
  durations: Float64Array | undefined,
): number {
  const { ts, isBot, visitOf, typeCodes, userEvents: users } = c;
  const { from, to, botWant, filters, pageView, space } = p;
  const { kind, codes: keyCodes, starts } = space;
  const visitStart = c.visitStart;
  const nf = filters.length;
  const { events, pageViews, visitors } = sums;
  const K = sums.keys;
  const noVisit = noVisitPasses ? PASS : 0;
  const userStamp = new Int32Array(K).fill(-1);
  const visitStamp = new Int32Array(K).fill(-1);
  let lastUser = -1;
  let lastVisit = -1;
  let nDurations = 0;
  const only = p.only;
  const n = only === undefined ? p.u1 - p.u0 : only.length;
  for (let x = 0; x < n; x++) {
    const u = only === undefined ? p.u0 + x : only[x];
    const end = users[u + 1];
    for (let i = users[u]; i < end; i++) {
      const t = ts[i];
      if (t < from || t >= to) continue;
      let ok = true;
      for (let j = 0; j < nf && ok; j++) ok = filters[j].pass[filters[j].codes[i]] !== 0;
      if (!ok) continue;
      const v = visitOf[i];
      const st = v < 0 ? noVisit : state[v];
      if (countEvents && (st & PASS) !== 0 && (botWant < 0 || isBot[i] === botWant)) {
        const k =
          kind === KEY.eventCode
            ? keyCodes![i]
            : kind === KEY.visitCode
              ? v < 0
                ? 0
                : keyCodes![v]
              : kind === KEY.bucket
                ? bucketOf(starts, t)
                : 0;
        events[k]++;
        if (typeCodes[i] === pageView) pageViews[k]++;
        if (userStamp[k] !== u) {
          userStamp[k] = u;
          visitors[k]++;
        }
        if (lastUser !== u) {
          lastUser = u;
          visitors[K]++;
        }
      }
      if (members && (st & SELECTED) !== 0) {
        // A visit's events are contiguous too: "last visit counted under this key" suffices.
        const k =
          kind === KEY.eventCode
            ? keyCodes![i]
            : kind === KEY.visitCode
              ? keyCodes![v]
              : kind === KEY.bucket
                ? bucketOf(starts, visitStart[v])
                : 0;
        if (visitStamp[k] !== v) {
          visitStamp[k] = v;
          addVisit(c, sums, k, v);
        }
        if (lastVisit !== v) {
          lastVisit = v;
          const d = addVisit(c, sums, K, v);
          if (durations !== undefined) durations[nDurations++] = d;
        }
      }
    }
  }
  return nDurations;
}
