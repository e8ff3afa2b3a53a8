import type { Visit, WebEvent } from './web-fixtures.ts';

/**
 * Issue 20's query semantics computed from scratch over the events and visits a test stored,
 * written from the contract's text (CONTRACT-20, "Semantics"), not from the SQL.
 */
export type Op = '==' | '!=' | '~=' | '!~';
export interface RefFilter {
  dim: string;
  op: Op;
  values: string[];
}
export type Bots = 'exclude' | 'include' | 'only';
export interface Question {
  from: number;
  to: number;
  filters: RefFilter[];
  bots: Bots;
}

const VISIT_DIMS: Record<string, (v: Visit) => string | null> = {
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
const EVENT_DIMS: Record<string, (e: WebEvent) => string | null> = {
  page: (e) => e.path,
  hostname: (e) => e.hostname,
  event_type: (e) => e.type,
  browser: (e) => e.browser,
  os: (e) => e.os,
  device: (e) => e.device,
  country: (e) => e.country,
};

export const isVisitDim = (dim: string) => dim in VISIT_DIMS;

/** The value of a visit dimension on visit `v` (the contract's: its first event's, or its entry/exit page). */
export const visitValue = (dim: string, v: Visit): string | null => VISIT_DIMS[dim](v);

/** The value of an event dimension or `property:<key>` on event `e`. */
export function eventValue(dim: string, e: WebEvent): string | null {
  if (dim.startsWith('property:')) return e.properties?.[dim.slice('property:'.length)] ?? null;
  return EVENT_DIMS[dim](e);
}

function matches(f: RefFilter, value: string | null): boolean {
  const is = f.values.some((v) => (v === '(none)' ? value === null : value === v));
  const has = value !== null && f.values.some((v) => value.toLowerCase().includes(v.toLowerCase()));
  return { '==': is, '!=': !is, '~=': has, '!~': !has }[f.op];
}

export interface RefCounts {
  visitors: Set<string>;
  events: number;
  page_views: number;
  visits: Visit[];
}

const empty = (): RefCounts => ({ visitors: new Set(), events: 0, page_views: 0, visits: [] });

export class Reference {
  readonly #events: readonly WebEvent[];
  readonly #visits: readonly Visit[];
  readonly #visitOf = new Map<string, Visit>();

  constructor(events: readonly WebEvent[], visits: readonly Visit[]) {
    this.#events = events;
    this.#visits = visits;
    for (const v of visits) for (const e of v.members) this.#visitOf.set(e.event_id, v);
  }

  #botOk(q: Question, flag: boolean): boolean {
    return q.bots === 'include' || (q.bots === 'only') === flag;
  }

  #eventPass(q: Question, e: WebEvent): boolean {
    return q.filters.filter((f) => !isVisitDim(f.dim)).every((f) => matches(f, eventValue(f.dim, e)));
  }

  /** A visit's event that is selected as far as the visit goes: in [from, to) and event filters pass. */
  #memberPass(q: Question, e: WebEvent): boolean {
    return e.ts >= q.from && e.ts < q.to && this.#eventPass(q, e);
  }

  #visitPass(q: Question, v: Visit | undefined): boolean {
    return q.filters
      .filter((f) => isVisitDim(f.dim))
      .every((f) => matches(f, v ? VISIT_DIMS[f.dim](v) : null));
  }

  selectedEvents(q: Question): WebEvent[] {
    return this.#events.filter(
      (e) =>
        e.ts >= q.from &&
        e.ts < q.to &&
        this.#botOk(q, e.is_bot) &&
        this.#eventPass(q, e) &&
        this.#visitPass(q, this.#visitOf.get(e.event_id)),
    );
  }

  selectedVisits(q: Question): Visit[] {
    const eventFilters = q.filters.some((f) => !isVisitDim(f.dim));
    return this.#visits.filter(
      (v) =>
        v.started_at >= q.from &&
        v.started_at < q.to &&
        this.#botOk(q, v.is_bot) &&
        this.#visitPass(q, v) &&
        (!eventFilters || v.members.some((e) => this.#memberPass(q, e))),
    );
  }

  totals(q: Question): RefCounts {
    const c = empty();
    for (const e of this.selectedEvents(q)) add(c, e);
    c.visits = this.selectedVisits(q);
    return c;
  }

  /** Counts per dimension value (null = none). */
  groups(q: Question, dim: string): Map<string | null, RefCounts> {
    const out = new Map<string | null, RefCounts>();
    const at = (k: string | null) => out.get(k) ?? out.set(k, empty()).get(k)!;
    const visitDim = isVisitDim(dim);
    for (const e of this.selectedEvents(q)) {
      const v = this.#visitOf.get(e.event_id);
      add(at(visitDim ? (v ? VISIT_DIMS[dim](v) : null) : eventValue(dim, e)), e);
    }
    for (const v of this.selectedVisits(q)) {
      if (visitDim) {
        at(VISIT_DIMS[dim](v)).visits.push(v);
      } else {
        const values = new Set(
          v.members.filter((e) => this.#memberPass(q, e)).map((e) => eventValue(dim, e)),
        );
        for (const value of values) at(value).visits.push(v);
      }
    }
    return out;
  }
}

function add(c: RefCounts, e: WebEvent): void {
  c.visitors.add(e.user_id);
  c.events++;
  if (e.type === 'page_view') c.page_views++;
}

/** A metric from its definition: percent bounced (one decimal), mean seconds, views per visit (two decimals). */
export function refMetric(m: string, c: RefCounts): number | null {
  const n = c.visits.length;
  const sum = (f: (v: Visit) => number) => c.visits.reduce((s, v) => s + f(v), 0);
  switch (m) {
    case 'visitors':
      return c.visitors.size;
    case 'events':
      return c.events;
    case 'page_views':
      return c.page_views;
    case 'visits':
      return n;
    case 'bounce_rate':
      return n === 0
        ? null
        : Math.round((1000 * sum((v) => (v.events === 1 && v.page_views === 1 ? 1 : 0))) / n) / 10;
    case 'visit_duration':
      return n === 0 ? null : Math.round(sum((v) => v.ended_at - v.started_at) / n / 1000);
    case 'views_per_visit':
      return n === 0 ? null : Math.round((100 * sum((v) => v.page_views)) / n) / 100;
  }
  throw new Error(`unknown metric ${m}`);
}

export function refMedianSeconds(visits: readonly Visit[]): number | null {
  if (visits.length === 0) return null;
  const d = visits.map((v) => v.ended_at - v.started_at).sort((a, b) => a - b);
  const mid = Math.floor(d.length / 2);
  const ms = d.length % 2 === 1 ? d[mid] : (d[mid - 1] + d[mid]) / 2;
  return Math.round(ms / 1000);
}

/** The figures of /v1/stats/summary (all but `from` and `to`) for the selection counted in `c`. */
export function refSummary(c: RefCounts) {
  return {
    events: c.events,
    page_views: c.page_views,
    unique_users: c.visitors.size,
    visitors: c.visitors.size,
    visits: c.visits.length,
    bounce_rate: refMetric('bounce_rate', c),
    visit_duration: refMetric('visit_duration', c),
    visit_duration_median: refMedianSeconds(c.visits),
    views_per_visit: refMetric('views_per_visit', c),
  };
}
