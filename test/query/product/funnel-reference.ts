import type { Visit, WebEvent } from '../web-fixtures.ts';
import { Reference, isVisitDim, type Bots, type RefFilter } from '../web-reference.ts';

/**
 * Funnels computed by brute force over the stored rows, written from CONTRACT-21's text
 * ("Funnel"), not from src/query/product/funnel.ts: every start's chain is walked in full.
 * Filters (global and per step) are issue 20's, evaluated by its reference (web-reference.ts).
 */

export interface RefFunnelQuestion {
  from: number;
  to: number;
  bots: Bots;
  filters: RefFilter[];
  steps: RefFilter[][];
  windowMs: number;
  unit: 'user' | 'visit';
  order: 'strict' | 'any';
  /** A dimension name as the API spells it (`page`, `channel`, `property:plan`), or none. */
  breakdown: string | null;
}

export interface RefStep {
  count: number;
  medianMsFromPrevious: number | null;
}

export interface RefFunnel {
  steps: RefStep[];
  groups: { key: string | null; steps: RefStep[] }[];
}

const VISIT_VALUES: Record<string, (v: Visit) => string | null> = {
  entry_page: (v) => v.entry_page,
  exit_page: (v) => v.exit_page,
  referrer: (v) => v.first.referrer_host,
  channel: (v) => v.first.channel,
  utm_source: (v) => v.first.utm_source,
  utm_medium: (v) => v.first.utm_medium,
  utm_campaign: (v) => v.first.utm_campaign,
  utm_term: (v) => v.first.utm_term,
  utm_content: (v) => v.first.utm_content,
};
const EVENT_VALUES: Record<string, (e: WebEvent) => string | null> = {
  page: (e) => e.path,
  hostname: (e) => e.hostname,
  event_type: (e) => e.type,
  browser: (e) => e.browser,
  os: (e) => e.os,
  device: (e) => e.device,
  country: (e) => e.country,
};

/** One unit's outcome: how many steps it did, its chain's step times, and its chain's first event. */
interface UnitChain {
  depth: number;
  times: number[];
  first: WebEvent;
}

/**
 * The funnel of `q` over `events` and their `visits`. `rank` is each event's place in the read
 * model's storage (its index there), the sequence order's last tie-break: the test reads it from
 * the model, since the contract orders equal (time, mask) events by it.
 */
export function refFunnel(
  events: readonly WebEvent[],
  visits: readonly Visit[],
  q: RefFunnelQuestion,
  rank: (e: WebEvent) => number,
): RefFunnel {
  const ref = new Reference(events, visits);
  const visitOf = new Map<string, Visit>();
  for (const v of visits) for (const e of v.members) visitOf.set(e.event_id, v);

  const everything = { from: -Infinity, to: Infinity, bots: 'include' as const };
  const stepSets = q.steps.map((filters) => new Set(ref.selectedEvents({ ...everything, filters })));
  const matches = (e: WebEvent, j: number) => stepSets[j].has(e);
  const mask = (e: WebEvent) => q.steps.reduce((m, _, j) => (matches(e, j) ? m | (1 << j) : m), 0);

  const units = new Map<unknown, WebEvent[]>();
  for (const e of ref.selectedEvents(q)) {
    const unit = q.unit === 'user' ? e.user_id : visitOf.get(e.event_id);
    if (unit === undefined) continue; // unit 'visit': an event of no visit takes no part
    units.set(unit, [...(units.get(unit) ?? []), e]);
  }

  const chains: UnitChain[] = [];
  for (const list of units.values()) {
    const seq = list.toSorted((a, b) => a.ts - b.ts || mask(a) - mask(b) || rank(a) - rank(b));
    const chain = q.order === 'strict' ? strictChain(seq, q, matches) : anyChain(seq, q, matches);
    if (chain.depth > 0) chains.push(chain);
  }

  const keyOf = (e: WebEvent): string | null => {
    const dim = q.breakdown!;
    if (dim.startsWith('property:')) return e.properties?.[dim.slice('property:'.length)] ?? null;
    if (isVisitDim(dim)) {
      const v = visitOf.get(e.event_id);
      return v === undefined ? null : VISIT_VALUES[dim](v);
    }
    return EVENT_VALUES[dim](e);
  };
  const groups = new Map<string | null, UnitChain[]>();
  if (q.breakdown !== null) {
    for (const c of chains) groups.set(keyOf(c.first), [...(groups.get(keyOf(c.first)) ?? []), c]);
  }
  return {
    steps: stepsOf(chains, q.steps.length),
    groups: [...groups]
      .map(([key, list]) => ({ key, steps: stepsOf(list, q.steps.length) }))
      .sort((a, b) => b.steps[0].count - a.steps[0].count || keyOrder(a.key, b.key)),
  };
}

type Matches = (e: WebEvent, step: number) => boolean;

/** Strict: from every start, e_j = the first event after e_(j-1) matching step j within the window. */
function strictChain(seq: WebEvent[], q: RefFunnelQuestion, matches: Matches): UnitChain {
  let best: UnitChain = { depth: 0, times: [], first: seq[0] };
  seq.forEach((start, s) => {
    if (!matches(start, 0)) return;
    const times = [start.ts];
    let prev = s;
    for (let j = 1; j < q.steps.length; j++) {
      const next = seq.findIndex((e, i) => i > prev && matches(e, j) && e.ts - start.ts <= q.windowMs);
      if (next < 0) break;
      times.push(seq[next].ts);
      prev = next;
    }
    if (times.length > best.depth) best = { depth: times.length, times, first: start };
  });
  return best;
}

/**
 * Any order: from every start (an event matching some step), the distinct steps matched at or
 * after it within the window; t_k = the time at which k distinct steps are first reached.
 */
function anyChain(seq: WebEvent[], q: RefFunnelQuestion, matches: Matches): UnitChain {
  let best: UnitChain = { depth: 0, times: [], first: seq[0] };
  seq.forEach((start, s) => {
    const steps = q.steps.map((_, j) => j);
    if (!steps.some((j) => matches(start, j))) return;
    const done = new Set<number>();
    const times: number[] = [];
    for (const e of seq.slice(s)) {
      if (e.ts - start.ts > q.windowMs) continue;
      for (const j of steps) if (matches(e, j)) done.add(j);
      while (times.length < done.size) times.push(e.ts);
    }
    if (done.size > best.depth) best = { depth: done.size, times, first: start };
  });
  return best;
}

function stepsOf(chains: readonly UnitChain[], k: number): RefStep[] {
  return Array.from({ length: k }, (_, j) => {
    const reached = chains.filter((c) => c.depth >= j + 1);
    return {
      count: reached.length,
      medianMsFromPrevious:
        j === 0 ? null : percentileCont50(reached.map((c) => c.times[j] - c.times[j - 1])),
    };
  });
}

/** percentile_cont(0.5): the middle value, or the mean of the two middle values. */
function percentileCont50(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const sorted = xs.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function keyOrder(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}
