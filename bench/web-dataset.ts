import type { TallyEvent } from '../src/event/types.ts';
import { COUNTRIES, SOURCES, USER_AGENTS, type SourceRow, type UserAgentRow } from './lib/web-tables.ts';

/**
 * The web-analytics data set of issue 20 (bench scenario `analytics`), generated as a stream of
 * TallyEvent batches, deterministic for a seed, in constant memory but for one number per
 * visitor. At `events` = 10 million: ~3 million visits from ~1 million visitors over 30 days.
 *
 * - Visits start in time order (a daily curve peaking mid-afternoon UTC), each emitted whole:
 *   1..N events (42 % single page views, the rest 2 + geometric, mean ~3.3 events), seconds to
 *   minutes apart (gaps 2 s–10 min). A third of the visits are by a new visitor; the others by
 *   one seen before, picked with a skew towards the earliest (a loyal tail: the top visitors come
 *   back several times a day), never within 31 min of that visitor's previous visit's end, so a
 *   visitor's visits are always separate sessions under the default 30-min timeout.
 * - A visitor keeps one user agent (21 strings: desktop, mobile, tablet, 4 bots at ~1 % of
 *   visitors and ~2 % of events) and one country (50 codes, Zipf-like, US ~20 %).
 * - A visit has one source (web-tables.ts SOURCES): its landing page carries the referrer and
 *   the utm tags; later pages have the previous page as referrer and no tags.
 * - Pages: 3,000 paths on one host, Zipf-like (s = 1); event types: page_view ~87 %, click,
 *   signup, purchase (the first event of a visit is always a page view).
 *
 * Exactly `events` events; the last one lands at about `end`; a few visits run past `end` by
 * minutes, as on a live site.
 */
export interface WebDatasetOptions {
  events: number;
  /** Epoch ms, minute-aligned: the data set covers [end - days, end). */
  end: number;
  days?: number;
  seed?: number;
  project?: string;
}

export const SITE = 'https://www.example.com';
const MINUTE = 60_000;
const DAY = 86_400_000;
const PAGES = 3_000;
const GAP_AFTER_VISIT_MS = 31 * MINUTE;

/** mulberry32: small, fast, good enough for synthetic data; same seed, same stream. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit mix of a visitor number: its attributes and id come from it, so none is stored. */
function mix(n: number, salt: number): number {
  let h = Math.imul(n ^ salt, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Samples an index by cumulative weights (binary search). */
class Weighted {
  readonly #cum: Float64Array;
  constructor(weights: readonly number[]) {
    this.#cum = new Float64Array(weights.length);
    let sum = 0;
    weights.forEach((w, i) => (this.#cum[i] = sum += w));
    for (let i = 0; i < weights.length; i++) this.#cum[i] /= sum;
  }
  pick(u: number): number {
    let lo = 0;
    let hi = this.#cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cum[mid] > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

const zipf = (n: number, s: number) => new Weighted(Array.from({ length: n }, (_, r) => 1 / (r + 1) ** s));

const TOP_PAGES = ['/', '/pricing', '/features', '/blog', '/docs', '/about', '/signup', '/login', '/contact'];
/** The path of the page of popularity rank `r`. */
export function pagePath(r: number): string {
  if (r < TOP_PAGES.length) return TOP_PAGES[r];
  if (r % 3 === 0) return `/blog/post-${r}`;
  if (r % 3 === 1) return `/docs/guide-${r % 40}/topic-${r}`;
  return `/products/item-${r}`;
}

/**
 * The time of day (fraction of a day) at fraction `f` of a day's visits: the inverse of the
 * cumulative of a daily curve 1 + 0.6·sin(2π(x − 0.375)) (peak at 15:00 UTC), tabulated per minute.
 */
const DIURNAL = (() => {
  const n = 1440;
  const cum = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) cum[i + 1] = cum[i] + 1 + 0.6 * Math.sin(2 * Math.PI * ((i + 0.5) / n - 0.375));
  return (f: number) => {
    const target = f * cum[n];
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid + 1] >= target) hi = mid;
      else lo = mid + 1;
    }
    return (lo + (target - cum[lo]) / (cum[lo + 1] - cum[lo])) / n;
  };
})();

export interface WebDatasetCounts {
  events: number;
  visits: number;
  visitors: number;
  botEvents: number;
}

export class WebDataset {
  readonly #o: Required<WebDatasetOptions>;
  readonly #ua = new Weighted(USER_AGENTS.map((u) => u.weight));
  readonly #country = zipf(COUNTRIES.length, 1.1);
  readonly #source = new Weighted(SOURCES.map((s) => s.weight));
  readonly #page = zipf(PAGES, 1);
  /** Zipf samplers for the short lists of web-tables.ts, by length. */
  readonly #lists = new Map<number, Weighted>();
  /** Per visitor number: the end of its latest visit (epoch ms). Grows by doubling. */
  #lastEnd = new Float64Array(1 << 16);
  readonly counts: WebDatasetCounts = { events: 0, visits: 0, visitors: 0, botEvents: 0 };

  constructor(options: WebDatasetOptions) {
    this.#o = { days: 30, seed: 20, project: 'default', ...options };
  }

  get start(): number {
    return this.#o.end - this.#o.days * DAY;
  }

  /** The stream, `size` events a batch (the last one shorter). Starts afresh on every call. */
  *batches(size: number): Generator<TallyEvent[]> {
    const r = rng(this.#o.seed);
    this.#lastEnd = new Float64Array(1 << 16);
    Object.assign(this.counts, { events: 0, visits: 0, visitors: 0, botEvents: 0 });
    let batch: TallyEvent[] = [];
    while (this.counts.events < this.#o.events) {
      for (const e of this.#visit(r)) {
        batch.push(e);
        if (batch.length === size) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length > 0) yield batch;
  }

  /** The user agent row of a visitor number (fixed per visitor). */
  userAgentOf(visitor: number): UserAgentRow {
    return USER_AGENTS[this.#ua.pick(mix(visitor, 0x51ed) / 4294967296)];
  }

  #visitStart(r: () => number): number {
    const { events, days } = this.#o;
    // Linear in events emitted, so the last event lands near `end`; then bent by the daily curve.
    const x = (this.counts.events / events) * days;
    const day = Math.min(days - 1, Math.floor(x));
    return this.start + day * DAY + Math.floor(DIURNAL(x - day) * DAY) + Math.floor(r() * 1000);
  }

  /** A visitor free at `start`: usually a returning one, a third of the time (or when busy) a new one. */
  #visitor(r: () => number, start: number): number {
    if (this.counts.visitors > 0 && r() >= 1 / 3) {
      for (let attempt = 0; attempt < 4; attempt++) {
        const v = Math.floor(this.counts.visitors * r() ** 1.5);
        if (this.#lastEnd[v] + GAP_AFTER_VISIT_MS <= start) return v;
      }
    }
    const v = this.counts.visitors++;
    if (v >= this.#lastEnd.length) {
      const grown = new Float64Array(this.#lastEnd.length * 2);
      grown.set(this.#lastEnd);
      this.#lastEnd = grown;
    }
    return v;
  }

  #visit(r: () => number): TallyEvent[] {
    const start = this.#visitStart(r);
    const visitor = this.#visitor(r, start);
    const agent = this.userAgentOf(visitor);
    const country = COUNTRIES[this.#country.pick(mix(visitor, 0xc0c0) / 4294967296)];
    const userId = `${mix(visitor, 0x1d).toString(16).padStart(8, '0')}${visitor.toString(16).padStart(8, '0')}`;
    const geometric = (p: number) => Math.floor(Math.log(1 - r()) / Math.log(1 - p));
    let n = agent.bot ? 1 + geometric(0.15) : r() < 0.42 ? 1 : 2 + geometric(0.25);
    n = Math.min(n, 60, this.#o.events - this.counts.events);
    const source: SourceRow = agent.bot ? SOURCES[0] : SOURCES[this.#source.pick(r())];
    const pick = <T>(list: readonly T[]): T => {
      let w = this.#lists.get(list.length);
      if (w === undefined) this.#lists.set(list.length, (w = zipf(list.length, 1)));
      return list[w.pick(r())];
    };
    let referrer = source.referrers.length === 0 ? null : pick(source.referrers);
    let query = '';
    if (source.utm !== undefined) {
      const u = source.utm[Math.floor(r() * source.utm.length)];
      const tags = new URLSearchParams({
        utm_source: u.source,
        utm_medium: u.medium,
        utm_campaign: pick(u.campaigns),
      });
      if (u.terms !== undefined) tags.set('utm_term', pick(u.terms));
      query = `?${tags.toString()}`;
    }
    const out: TallyEvent[] = [];
    let ts = start;
    let url = `${SITE}${pagePath(this.#page.pick(r()))}${query}`;
    for (let i = 0; i < n; i++) {
      let type = 'page_view';
      if (i > 0) {
        ts += 2_000 + Math.min(10 * MINUTE - 2_000, Math.floor(-Math.log(1 - r()) * 45_000));
        const t = r();
        if (agent.bot || t < 0.8) {
          referrer = url;
          url = `${SITE}${pagePath(this.#page.pick(r()))}`;
        } else type = t < 0.97 ? 'click' : t < 0.985 ? 'signup' : 'purchase';
      }
      out.push({
        project: this.#o.project,
        eventId: `w${this.#o.seed}-${this.counts.events + i}`,
        type,
        userId,
        ts,
        receivedAt: ts,
        pageUrl: url,
        referrer,
        sessionId: null,
        userAgent: agent.ua,
        country,
        service: null,
        properties: null,
      });
    }
    this.#lastEnd[visitor] = ts;
    this.counts.events += n;
    this.counts.visits++;
    if (agent.bot) this.counts.botEvents += n;
    return out;
  }
}
