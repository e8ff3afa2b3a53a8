import type { Static } from '@sinclair/typebox';
import { LRUCache } from 'lru-cache';
import { TallyError } from '../../errors/tally-error.ts';
import type { ColumnarModel } from '../columnar/model.ts';
import {
  DIMENSION_HELP,
  NONE_VALUE,
  parseDimension,
  parseFilter,
  parseFilters,
  type Filter,
} from '../filters.ts';
import { percentage } from '../metrics.ts';
import type { RawWindow, ScopedStats } from '../scoped-stats.ts';
import { invalid, iso, resolveRange, type Range } from '../stats-service.ts';
import { zoneName } from '../time-buckets.ts';
import { checkQuery } from '../validate.ts';
import { funnel, type FunnelStepCount } from './funnel.ts';
import { paths } from './paths.ts';
import { retention } from './retention.ts';
import { FunnelBody, PathsQuery, RETENTION_MAX_PERIODS, RetentionQuery } from './schemas.ts';

type Input = Record<string, unknown>;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;
const DEFAULT_SPAN = WEEK;
const WINDOW_UNITS: Record<string, number> = { m: MINUTE, h: HOUR, d: DAY, w: WEEK };
const MAX_WINDOW = 90 * DAY;

export interface ProductServiceDeps {
  /** The read model's layers for a project (undefined: not loaded, off, or the range outside it). */
  scoped: Pick<ScopedStats, 'layers'>;
  raw: RawWindow;
  /**
   * Without the read model: the project's raw events in [fromMs, toMs) and their visits, as one
   * model, read from PostgreSQL on one snapshot; undefined when there are more than `maxEvents`
   * (nothing read then).
   */
  readModel: (
    project: string,
    range: { fromMs: number; toMs: number },
    maxEvents: number,
  ) => Promise<ColumnarModel | undefined>;
  /** Most raw events a question may read from PostgreSQL (TALLY_PRODUCT_MAX_SCAN_EVENTS). */
  maxScanEvents: number;
  now?: () => number;
}

/**
 * Funnels, retention and paths (issue 21): each question checked here, answered by one engine of
 * src/query/product/ over the read model's layers, or over the raw rows read from PostgreSQL when
 * the model cannot answer (refused before reading when there are too many of them).
 */
export class ProductService {
  readonly #deps: ProductServiceDeps;

  constructor(deps: ProductServiceDeps) {
    this.#deps = deps;
  }

  /** Checks a funnel request; `answer` then runs it (separate, so the caller can cache by the checked form). */
  checkFunnel(input: Input) {
    const q = checkQuery(FunnelBody, input);
    const range = this.#range(q);
    const steps = q.steps.map((s, i) => stepFilters(s, i));
    const windowMs = parseWindow(q.window);
    const breakdown = q.breakdown === undefined ? undefined : dimension(q.breakdown, 'breakdown');
    const question = {
      ...range,
      bots: q.bots,
      filters: parseFilters(q.filter),
      steps,
      windowMs,
      unit: q.count_by,
      order: q.order,
      breakdown,
    };
    const labels = q.steps.map(stepLabel);
    const window = this.#window(range);
    return {
      key: [
        'funnel',
        range,
        window.covers,
        q.filter ?? [],
        q.bots,
        q.steps,
        windowMs,
        q.count_by,
        q.order,
        q.breakdown ?? null,
        q.limit,
      ],
      answer: async (project: string) => {
        const { covers } = window;
        const models = await this.#models(project, covers, covers.from);
        const a = funnel(models, { ...question, from: covers.from, limit: q.limit });
        return {
          from: iso(range.from),
          to: iso(range.to),
          covers: { from: iso(covers.from), to: iso(covers.to) },
          count_by: q.count_by,
          order: q.order,
          window_seconds: windowMs / 1000,
          steps: stepRows(a.steps, labels),
          ...(q.breakdown === undefined
            ? {}
            : {
                breakdown: q.breakdown,
                groups: a.groups.map((g) => ({
                  value: g.key ?? NONE_VALUE,
                  steps: stepRows(g.steps, labels),
                })),
                has_more: a.totalGroups > a.groups.length,
              }),
        };
      },
    };
  }

  checkRetention(input: Input) {
    const q = checkQuery(RetentionQuery, input);
    const max = RETENTION_MAX_PERIODS[q.period];
    if (q.periods > max) throw invalid('periods', `periods must be at most ${max} with period=${q.period}`);
    const range = this.#range(q);
    const eventIs = (type: string | undefined): Filter[] =>
      type === undefined
        ? []
        : [{ dimension: { kind: 'event', name: 'event_type' }, op: 'is', values: [type] }];
    const window = this.#window(range);
    return {
      key: [
        'retention',
        range,
        window,
        q.filter ?? [],
        q.bots,
        q.period,
        q.periods,
        q.tz,
        q.cohort_event ?? null,
        q.return_event ?? null,
      ],
      answer: async (project: string) => {
        // First seen is judged over every raw event kept, not only those in the range.
        const { covers, since } = window;
        const models = await this.#models(project, covers, since);
        const a = retention(models, {
          from: covers.from,
          to: range.to,
          bots: q.bots,
          filters: parseFilters(q.filter),
          period: q.period,
          periods: q.periods,
          tz: q.tz,
          cohortFilters: eventIs(q.cohort_event),
          returnFilters: eventIs(q.return_event),
          historyFrom: since,
        });
        return {
          from: iso(range.from),
          to: iso(range.to),
          covers: { from: iso(covers.from), to: iso(covers.to) },
          first_seen_since: Number.isFinite(since) ? iso(since) : null,
          tz: q.tz,
          period: q.period,
          periods: q.periods,
          cohorts: a.cohorts.map((c) => ({
            start: iso(c.start),
            date: localDate(c.start, q.tz),
            users: c.users,
            returned: c.returned,
            retention: c.returned.map((r) => (r === null ? null : percentage(r, c.users))),
          })),
        };
      },
    };
  }

  checkPaths(input: Input) {
    const q = checkQuery(PathsQuery, input);
    const range = this.#range(q);
    const filters = parseFilters(q.filter);
    const window = this.#window(range);
    return {
      key: [
        'paths',
        range,
        window.covers,
        q.filter ?? [],
        q.bots,
        q.by,
        q.anchor,
        q.direction,
        q.depth,
        q.limit,
      ],
      answer: async (project: string) => {
        const { covers } = window;
        const models = await this.#models(project, covers, covers.from);
        const a = paths(models, {
          from: covers.from,
          to: range.to,
          bots: q.bots,
          filters,
          by: q.by,
          anchor: q.anchor,
          direction: q.direction,
          depth: q.depth,
          limit: q.limit,
        });
        return {
          from: iso(range.from),
          to: iso(range.to),
          covers: { from: iso(covers.from), to: iso(covers.to) },
          by: q.by,
          anchor: q.anchor,
          direction: q.direction,
          anchors: a.anchors,
          levels: a.levels.map((l) => ({
            depth: l.depth,
            items: l.items.map((i) => ({ ...i, percentage: percentage(i.count, a.anchors) })),
            other: l.other,
          })),
        };
      },
    };
  }

  #range(q: { from?: string | undefined; to?: string | undefined; tz: string }): Range {
    const now = this.#deps.now?.() ?? Date.now();
    const range = resolveRange(q, now);
    // A product question looks at a week by default, not the stats' 24 hours.
    return q.from === undefined ? { from: range.to - DEFAULT_SPAN, to: range.to } : range;
  }

  /**
   * The part of `range` the raw events cover, and where they begin (the raw window's start, or
   * -Infinity): checked before the cache, whose keys hold both (the window moves at UTC midnight
   * with no new data version).
   */
  #window(range: Range): { covers: Range; since: number } {
    const { raw } = this.#deps;
    if (!raw.stored) {
      throw rawUnavailable(
        'funnels, retention and paths need the raw events, which this server does not store (TALLY_STORE_RAW=false)',
      );
    }
    const since = raw.cutoff();
    if (range.to <= since) {
      throw rawUnavailable(
        `the raw events are kept from ${iso(since)} on (TALLY_RAW_RETENTION_DAYS): the range ends before`,
      );
    }
    return { covers: { from: Math.max(range.from, since), to: range.to }, since };
  }

  /**
   * The models answering for `project` over `covers`, whose events from `need` on (up to
   * covers.to) the question reads: the read model's layers, or else the raw rows read once from
   * PostgreSQL, one such read at a time per process (each builds a model of up to
   * TALLY_PRODUCT_MAX_SCAN_EVENTS events), refused when there are more. It waits for the model's
   * catch-up however long it takes (a stats question waits a bounded time): reading the range's
   * rows would be a catch-up's own work, most often more of it, and may be refused.
   */
  async #models(project: string, covers: Range, need: number): Promise<readonly ColumnarModel[]> {
    const layers = await this.#deps.scoped.layers(project, covers, Number.POSITIVE_INFINITY);
    if (layers !== undefined) return layers.models;
    const max = this.#deps.maxScanEvents;
    const model = await this.#deps.readModel(project, { fromMs: need, toMs: covers.to }, max);
    if (model === undefined) {
      throw new TallyError(
        'TALLY_QUERY_TOO_EXPENSIVE',
        `this question would read more than ${max} raw events from PostgreSQL (TALLY_PRODUCT_MAX_SCAN_EVENTS) while the read model cannot answer (TALLY_READ_MODEL=off, or loading: retry in a minute); narrow the range`,
      );
    }
    return [model];
  }
}

/**
 * One format per zone, bounded (each holds ~25 KB of ICU memory outside V8's heap); keyed by the
 * canonical name, as names match case-insensitively (`america/havana` is valid).
 */
const DATE_FORMATS = new LRUCache<string, Intl.DateTimeFormat>({ max: 1000 });

/** The local calendar date (YYYY-MM-DD) of `t` in `tz`. */
function localDate(t: number, name: string): string {
  // One format a zone, not one a spelling of its name.
  const tz = zoneName(name);
  let format = DATE_FORMATS.get(tz);
  if (format === undefined) {
    // Making one costs ~0.1 ms.
    format = new Intl.DateTimeFormat('en-CA', {
      timeZone: tz,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    DATE_FORMATS.set(tz, format);
  }
  const parts = format.formatToParts(t);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

function rawUnavailable(message: string): TallyError {
  return new TallyError('TALLY_RAW_UNAVAILABLE', message, {
    details: [{ index: 0, field: 'from', code: 'TALLY_RAW_UNAVAILABLE', message }],
  });
}

/** `30m`, `12h`, `7d`, `2w` → ms, within [1 minute, 90 days]. */
export function parseWindow(text: string): number {
  const m = /^([1-9]\d{0,5})([mhdw])$/.exec(text);
  if (m === null)
    throw invalid(
      'window',
      `window must be <n>m, <n>h, <n>d or <n>w, such as 30m or 7d (got ${JSON.stringify(text)})`,
    );
  const ms = Number(m[1]) * WINDOW_UNITS[m[2]];
  if (ms > MAX_WINDOW) throw invalid('window', `window must be at most 90d (got ${text})`);
  return ms;
}

function dimension(text: string, field: string) {
  const d = parseDimension(text);
  if (d === undefined)
    throw invalid(field, `${field} must be ${DIMENSION_HELP} (got ${JSON.stringify(text)})`);
  return d;
}

type Step = Static<typeof FunnelBody>['steps'][number];

/** A step as filters on its event; a wrong filter is named `steps[i].filter[j]`. */
function stepFilters(s: Step, i: number): Filter[] {
  const field = `steps[${i}]`;
  if (s.event_type === undefined && s.page === undefined && (s.filter?.length ?? 0) === 0) {
    throw invalid(field, `${field} needs event_type, page or filter`);
  }
  const out: Filter[] = [];
  if (s.event_type !== undefined)
    out.push({ dimension: { kind: 'event', name: 'event_type' }, op: 'is', values: [s.event_type] });
  if (s.page !== undefined)
    out.push({ dimension: { kind: 'event', name: 'page' }, op: 'is', values: [s.page] });
  (s.filter ?? []).forEach((text, j) => {
    try {
      out.push(parseFilter(text, j));
    } catch (err) {
      if (!(err instanceof TallyError)) throw err;
      const message = err.message;
      throw invalid(`${field}.filter[${j}]`, message);
    }
  });
  return out;
}

function stepLabel(s: Step): string {
  const parts = [
    ...(s.event_type === undefined ? [] : [s.event_type]),
    ...(s.page === undefined ? [] : [s.page]),
    ...(s.filter ?? []),
  ];
  return parts.join(' ');
}

function stepRows(steps: readonly FunnelStepCount[], labels: readonly string[]) {
  const first = steps[0]?.count ?? 0;
  return steps.map((s, i) => ({
    step: i + 1,
    label: labels[i],
    count: s.count,
    conversion_from_first: percentage(s.count, first),
    conversion_from_previous: i === 0 ? null : percentage(s.count, steps[i - 1].count),
    median_seconds_from_previous: s.medianMsFromPrevious === null ? null : s.medianMsFromPrevious / 1000,
  }));
}
