import type { ColumnarModel } from './model.ts';
import { KEY, emptySums, type KeySpace, type ScanColumns, type ScanSums } from './scan.ts';

/**
 * A user's events summed by key, once: for each user, the distinct keys of its events (an event
 * column's code, its visit's code, or the one key of no grouping) with their event and page-view
 * counts, and the user's first and last event time and bot flags.
 *
 * An unfiltered question counting events (not visits by their events) reads a user's pairs
 * instead of its events whenever all of the user's events fall in the range with the bots wanted:
 * for a 30-day question over 30 days of data that is almost every user, so an answer by country
 * reads about one pair per user instead of ten events. The other users (the range's edges, mixed
 * bot flags) are read event by event, as before. Same sums, exactly: the pairs are the events'
 * own counts, and a user's pairs are distinct keys, so each counts the user once.
 */
export interface Digest {
  /** User u's pairs are [first[u], first[u+1]). */
  first: Uint32Array;
  code: Uint32Array;
  events: Uint32Array;
  pageViews: Uint32Array;
  /** The user's first and last event times (+Infinity both when it has none, or is retired). */
  min: Float64Array;
  max: Float64Array;
  /** 0: every event human; 1: every event a bot; 2: both. */
  bot: Uint8Array;
  /** Built for questions counting visits by their events' keys (digestOf's `withVisits`). */
  visits?: DigestVisits;
}

/**
 * A visit counts under each key of its events (event-pass.ts, countEventsAndMembers): per pair,
 * the sums of the user's visits holding an event of that key; per user, those of its visits
 * holding any event (the total's). Only with every visit of the user counted (its span, `min` to
 * `max`, then covers its visits' starts too, and its visits' bot flags are one).
 */
export interface DigestVisits {
  visits: Uint32Array;
  bounces: Uint32Array;
  durationMs: Float64Array;
  pageViews: Uint32Array;
  userVisits: Uint32Array;
  userBounces: Uint32Array;
  userDurationMs: Float64Array;
  userPageViews: Uint32Array;
  /** 0: every visit human; 1: every visit a bot's; 2: both; 3: no visit. */
  bot: Uint8Array;
}

const MIXED = 2;
const digests = new WeakMap<ColumnarModel, Map<string, Digest>>();

/**
 * Digests kept per model at most: each costs ~17 B a user and 12 B a pair (tens of MB at 10 M
 * events), and a question may name any property key; the least recently used goes first.
 */
const MAX_DIGESTS = 6;

/**
 * The digest of `model` for the events' keys in `space`, named `name` (the grouping), built on
 * first use and then kept with the model (the last MAX_DIGESTS used). `pageView`: the event_type
 * code of page_view. `withVisits`: with the visit sums of each pair (a digest of its own).
 */
export function digestOf(
  model: ColumnarModel,
  c: ScanColumns,
  space: KeySpace,
  grouping: string,
  pageView: number,
  withVisits = false,
): Digest {
  let byName = digests.get(model);
  if (byName === undefined) digests.set(model, (byName = new Map<string, Digest>()));
  const name = withVisits ? `${grouping}+visits` : grouping;
  let d = byName.get(name);
  if (d === undefined) {
    d = build(c, space, pageView, withVisits);
    if (byName.size >= MAX_DIGESTS) byName.delete(byName.keys().next().value!);
  } else {
    byName.delete(name); // re-inserted below: the Map's order is the order of use
  }
  byName.set(name, d);
  return d;
}

/** Hides user `u` from every digest of `model` (it moved to a newer layer: layers.ts). */
export function retireInDigests(model: ColumnarModel, u: number): void {
  for (const d of digests.get(model)?.values() ?? []) {
    d.min[u] = Infinity;
    d.max[u] = Infinity;
  }
}

/** The key of event i, as the event passes key it with no filter (event-pass.ts). */
function keyOf(c: ScanColumns, space: KeySpace, i: number): number {
  if (space.kind === KEY.eventCode) return space.codes![i];
  if (space.kind === KEY.visitCode) {
    const v = c.visitOf[i];
    return v < 0 ? 0 : space.codes![v];
  }
  return 0;
}

function build(c: ScanColumns, space: KeySpace, pageView: number, withVisits: boolean): Digest {
  const { ts, isBot, typeCodes, userEvents, visitOf, visitStart, visitIsBot } = c;
  const nUsers = userEvents.length - 1;
  const slot = new Int32Array(space.keys).fill(-1);
  const code: number[] = [];
  const events: number[] = [];
  const pageViews: number[] = [];
  const first = new Uint32Array(nUsers + 1);
  const min = new Float64Array(nUsers).fill(Infinity);
  const max = new Float64Array(nUsers).fill(Infinity);
  const bot = new Uint8Array(nUsers);
  const pv = withVisits ? pairVisits(nUsers) : undefined;
  for (let u = 0; u < nUsers; u++) {
    const start = code.length;
    first[u] = start;
    let lo = Infinity;
    let hi = -Infinity;
    let bots = 0;
    let lastVisit = -1;
    let nVisits = 0;
    let visitBots = 0;
    const end = userEvents[u + 1];
    for (let i = userEvents[u]; i < end; i++) {
      const t = ts[i];
      if (t < lo) lo = t;
      if (t > hi) hi = t;
      bots += isBot[i];
      const k = keyOf(c, space, i);
      let j = slot[k];
      if (j < start) {
        j = code.push(k) - 1;
        events.push(0);
        pageViews.push(0);
        pv?.pairs.push(-1, 0, 0, 0, 0);
        slot[k] = j;
      }
      events[j]++;
      if (typeCodes[i] === pageView) pageViews[j]++;
      const v = visitOf[i];
      if (pv === undefined || v < 0) continue;
      // As countEventsAndMembers counts a visit: once per key (the last visit counted under the
      // pair's key) and once in the total (the last visit counted), in the events' order.
      if (pv.pairs[5 * j] !== v) {
        pv.pairs[5 * j] = v;
        addTo(pv.pairs, 5 * j + 1, c, v);
      }
      if (lastVisit !== v) {
        lastVisit = v;
        nVisits++;
        visitBots += visitIsBot[v];
        const s = visitStart[v];
        if (s < lo) lo = s;
        if (s > hi) hi = s;
        addTo(pv.user, 4 * u, c, v);
      }
    }
    const n = end - userEvents[u];
    if (n > 0) {
      min[u] = lo;
      max[u] = hi;
      bot[u] = bots === 0 ? 0 : bots === n ? 1 : MIXED;
    }
    if (pv !== undefined)
      pv.bot[u] = nVisits === 0 ? NO_VISIT : visitBots === 0 ? 0 : visitBots === nVisits ? 1 : MIXED;
  }
  first[nUsers] = code.length;
  return {
    first,
    code: Uint32Array.from(code),
    events: Uint32Array.from(events),
    pageViews: Uint32Array.from(pageViews),
    min,
    max,
    bot,
    visits: pv === undefined ? undefined : visitsOf(pv, code.length, nUsers),
  };
}

const NO_VISIT = 3;

/** The visit sums while a digest builds: per pair [last visit, visits, bounces, ms, page views]; per user the last four. */
function pairVisits(nUsers: number) {
  return { pairs: [] as number[], user: new Float64Array(4 * nUsers), bot: new Uint8Array(nUsers) };
}

/** Adds visit v at `into[at..at+4)`: visits, bounces, rounded ms, page views (as addVisit counts it). */
function addTo(into: { [i: number]: number }, at: number, c: ScanColumns, v: number): void {
  const n = c.visitPageViews[v];
  into[at]++;
  if (c.visitEvents[v] === 1 && n === 1) into[at + 1]++;
  into[at + 2] += Math.round(c.visitEnd[v] - c.visitStart[v]);
  into[at + 3] += n;
}

function visitsOf(pv: ReturnType<typeof pairVisits>, nPairs: number, nUsers: number): DigestVisits {
  const column = <A extends Uint32Array | Float64Array>(
    make: new (n: number) => A,
    n: number,
    stride: number,
    src: ArrayLike<number>,
    at: number,
  ) => {
    const a = new make(n);
    for (let i = 0; i < n; i++) a[i] = src[stride * i + at];
    return a;
  };
  return {
    visits: column(Uint32Array, nPairs, 5, pv.pairs, 1),
    bounces: column(Uint32Array, nPairs, 5, pv.pairs, 2),
    durationMs: column(Float64Array, nPairs, 5, pv.pairs, 3),
    pageViews: column(Uint32Array, nPairs, 5, pv.pairs, 4),
    userVisits: column(Uint32Array, nUsers, 4, pv.user, 0),
    userBounces: column(Uint32Array, nUsers, 4, pv.user, 1),
    userDurationMs: column(Float64Array, nUsers, 4, pv.user, 2),
    userPageViews: column(Uint32Array, nUsers, 4, pv.user, 3),
    bot: pv.bot,
  };
}

/**
 * Events, page views and visitors per key of the users [u0, u1), with no filter of any kind
 * (`sides.events`), and the visits by their events' keys (`sides.visits`, a digest with visits):
 * a user wholly inside the range with the bots wanted from its pairs; returns the users partly
 * inside (or of mixed bot flags), ascending, for the event pass to read event by event.
 *
 * Over all users (the layers' case) the sums of the users wholly inside are taken the cheaper
 * way: added pair by pair, or, when most users are wholly inside (a 30-day question over 30 days
 * of data), as the digest's totals over every user of the bots wanted minus the pairs of those
 * that are not. Integers below 2^53 (durations are summed rounded), so both ways are exact.
 */
export function countByDigest(
  d: Digest,
  p: { u0: number; u1: number; from: number; to: number; botWant: number },
  sums: ScanSums,
  sides: { events: boolean; visits: boolean } = { events: true, visits: false },
): Uint32Array {
  const rest: number[] = [];
  const { min, max, bot } = d;
  const { from, to, botWant } = p;
  const dv = sides.visits ? d.visits : undefined;
  if (sides.visits && dv === undefined) throw new Error('digest: built without visits');
  const nUsers = d.first.length - 1;
  const totals = p.u0 === 0 && p.u1 === nUsers ? totalsOf(d, sums.keys, botWant) : undefined;
  /** Users of the totals not wholly inside: the pairs to take back off the totals. */
  const notWhole: number[] = [];
  let nWhole = 0;
  for (let u = p.u0; u < p.u1; u++) {
    const lo = min[u];
    const hi = max[u];
    if (lo >= from && hi < to && wanted(d, dv, u, botWant)) {
      nWhole++;
      continue;
    }
    if (totals !== undefined && totals.inTotals[u] === 1) notWhole.push(u);
    if (hi < from || lo >= to) continue;
    const b = bot[u];
    if (
      botWant < 0 ||
      b === botWant ||
      b === MIXED ||
      // Its events are all of the other kind, not (all) its visits: the pass counts those.
      (dv !== undefined && dv.bot[u] !== 1 - botWant && dv.bot[u] !== NO_VISIT)
    ) {
      rest.push(u);
    }
  }
  if (totals !== undefined && notWhole.length < nWhole) {
    addTotals(totals.sums, sums, sides);
    for (const u of notWhole) addUser(d, u, sums, sides, -1);
  } else {
    for (let u = p.u0; u < p.u1; u++)
      if (min[u] >= from && max[u] < to && wanted(d, dv, u, botWant)) addUser(d, u, sums, sides, 1);
  }
  return Uint32Array.from(rest);
}

/** Whether user u's rows are all of the bots wanted, and it has rows (not retired). */
function wanted(d: Digest, dv: DigestVisits | undefined, u: number, botWant: number): boolean {
  if (d.min[u] === Infinity) return false;
  if (botWant < 0) return true;
  return d.bot[u] === botWant && (dv === undefined || dv.bot[u] === botWant || dv.bot[u] === NO_VISIT);
}

/** Adds (sign 1) or takes off (sign -1) user u's pairs, and the user in the total (key `keys`). */
function addUser(
  d: Digest,
  u: number,
  sums: ScanSums,
  sides: { events: boolean; visits: boolean },
  sign: number,
): void {
  const { first, code } = d;
  const K = sums.keys;
  const end = first[u + 1];
  if (sides.events) {
    const { events, pageViews, visitors } = sums;
    for (let j = first[u]; j < end; j++) {
      const k = code[j];
      events[k] += sign * d.events[j];
      pageViews[k] += sign * d.pageViews[j];
      visitors[k] += sign;
    }
    visitors[K] += sign;
  }
  const dv = sides.visits ? d.visits : undefined;
  if (dv === undefined) return;
  for (let j = first[u]; j < end; j++) {
    const k = code[j];
    sums.visits[k] += sign * dv.visits[j];
    sums.bounces[k] += sign * dv.bounces[j];
    sums.durationMs[k] += sign * dv.durationMs[j];
    sums.visitPageViews[k] += sign * dv.pageViews[j];
  }
  sums.visits[K] += sign * dv.userVisits[u];
  sums.bounces[K] += sign * dv.userBounces[u];
  sums.durationMs[K] += sign * dv.userDurationMs[u];
  sums.visitPageViews[K] += sign * dv.userPageViews[u];
}

/**
 * A digest's sums over every user of the bots wanted (`wanted`, at the time they are taken), per
 * key, with which users they hold: a user retired later is still in them, and is taken back off
 * as any user not wholly inside is.
 */
interface DigestTotals {
  sums: ScanSums;
  inTotals: Uint8Array;
}

const totalsByDigest = new WeakMap<Digest, Map<number, DigestTotals>>();

function totalsOf(d: Digest, keys: number, botWant: number): DigestTotals {
  let byBots = totalsByDigest.get(d);
  if (byBots === undefined) totalsByDigest.set(d, (byBots = new Map<number, DigestTotals>()));
  let t = byBots.get(botWant);
  if (t !== undefined) return t;
  const nUsers = d.first.length - 1;
  const sums = emptySums(keys);
  const inTotals = new Uint8Array(nUsers);
  const sides = { events: true, visits: d.visits !== undefined };
  for (let u = 0; u < nUsers; u++) {
    if (!wanted(d, d.visits, u, botWant)) continue;
    inTotals[u] = 1;
    addUser(d, u, sums, sides, 1);
  }
  byBots.set(botWant, (t = { sums, inTotals }));
  return t;
}

/** Adds the totals' sides wanted to `sums` (same keys). */
function addTotals(t: ScanSums, sums: ScanSums, sides: { events: boolean; visits: boolean }): void {
  const K = sums.keys;
  for (let k = 0; k <= K; k++) {
    if (sides.events) {
      sums.visitors[k] += t.visitors[k];
      if (k < K) {
        sums.events[k] += t.events[k];
        sums.pageViews[k] += t.pageViews[k];
      }
    }
    if (sides.visits) {
      sums.visits[k] += t.visits[k];
      sums.bounces[k] += t.bounces[k];
      sums.durationMs[k] += t.durationMs[k];
      sums.visitPageViews[k] += t.visitPageViews[k];
    }
  }
}
