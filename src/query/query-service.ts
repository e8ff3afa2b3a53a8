import type { Static } from '@sinclair/typebox';
import { classifyPgError } from '../store/pg-errors.ts';
import type { QueryCache } from './cache.ts';
import type { EventsStore } from '../store/events-store.ts';
import { readBreakdown, type BreakdownService } from './breakdown-service.ts';
import type { ProductService } from './product/product-service.ts';
import { formatFilter, parseFilters } from './filters.ts';
import type { RangeQuery } from './schemas.ts';
import {
  BreakdownQuery,
  EventCountQuery,
  LimitQuery,
  SummaryQuery,
  TimeseriesQuery,
  UserEventsRequest,
} from './schemas.ts';
import type { ScopedStats, Selection } from './scoped-stats.ts';
import { resolveRange } from './stats-service.ts';
import { checkQuery } from './validate.ts';

export interface QueryServiceDeps {
  stats: ScopedStats;
  breakdown: BreakdownService;
  product: ProductService;
  events: EventsStore;
  cache: QueryCache;
  now?: () => number;
}

type Input = Record<string, unknown>;

/**
 * Every question Tally answers, for REST and gRPC alike: validates the request against the
 * query schemas (the REST routes declare the same ones), resolves the range, and answers through
 * the cache from the rollups (or the raw table for per-user questions).
 */
export class QueryService {
  readonly #deps: QueryServiceDeps;

  constructor(deps: QueryServiceDeps) {
    this.#deps = deps;
  }

  async summary(project: string, input: Input) {
    const q = checkQuery(SummaryQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['summary', range.from, range.to, key(sel)], () =>
      this.#deps.stats.summary(project, range, sel),
    );
  }

  async timeseries(project: string, input: Input) {
    const q = checkQuery(TimeseriesQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    const query = {
      metric: q.metric,
      interval: q.interval,
      tz: q.tz,
      eventType: q.event_type,
      pageUrl: q.page_url,
    };
    return this.#cached(project, ['timeseries', range.from, range.to, query, key(sel)], () =>
      this.#deps.stats.timeseries(project, range, sel, query),
    );
  }

  async topPages(project: string, input: Input) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['top-pages', range.from, range.to, q.limit, key(sel)], () =>
      this.#deps.stats.topPages(project, range, sel, q.limit),
    );
  }

  async eventTypes(project: string, input: Input) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['event-types', range.from, range.to, q.limit, key(sel)], () =>
      this.#deps.stats.eventTypes(project, range, sel, q.limit),
    );
  }

  /** Issue 20: one dimension's values with their metrics, under filters, sorted and paged. */
  async breakdown(project: string, input: Input) {
    const q = checkQuery(BreakdownQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    const question = readBreakdown(q);
    const { metrics, sort, limit, page } = question;
    const cacheKey = ['breakdown', range.from, range.to, q.dimension, metrics, sort, limit, page, key(sel)];
    return this.#cached(project, cacheKey, () =>
      this.#deps.breakdown.breakdown(project, range, sel, question),
    );
  }

  /** Issue 21: how many users (or visits) went through 2–10 steps, in order or not, within a window. */
  async funnel(project: string, input: Input) {
    const q = this.#deps.product.checkFunnel(input);
    return this.#cached(project, q.key, () => q.answer(project));
  }

  /** Issue 21: cohorts by first seen (or first doing an event), and who came back in each later period. */
  async retention(project: string, input: Input) {
    const q = this.#deps.product.checkRetention(input);
    return this.#cached(project, q.key, () => q.answer(project));
  }

  /** Issue 21: the most common pages (or events) after or before one, within the visit. */
  async paths(project: string, input: Input) {
    const q = this.#deps.product.checkPaths(input);
    return this.#cached(project, q.key, () => q.answer(project));
  }

  async userEvents(project: string, input: Input) {
    const q = checkQuery(UserEventsRequest, input);
    return this.#cached(project, ['user-events', q.user_id, q.limit], async () => ({
      user_id: q.user_id,
      events: await this.#deps.events.userEvents(project, q.user_id, q.limit),
    }));
  }

  /** Seed 003: how many events this user had on this page. */
  async eventCount(project: string, input: Input) {
    const q = checkQuery(EventCountQuery, input);
    return this.#cached(project, ['event-count', q.user_id, q.page_url], async () => ({
      user_id: q.user_id,
      page_url: q.page_url,
      count: await this.#deps.events.userPageCount(project, q.user_id, q.page_url),
    }));
  }

  /** `q.tz` where the question has a zone (timeseries), else UTC: where a date-only day starts. */
  #range(q: Static<typeof RangeQuery> & { tz?: string }) {
    return resolveRange(q, this.#deps.now?.() ?? Date.now());
  }

  #cached<T>(project: string, question: unknown[], compute: () => Promise<T>): Promise<T> {
    // PostgreSQL down → TALLY_DB_UNAVAILABLE (503 with Retry-After, gRPC UNAVAILABLE), not a 500.
    return this.#deps.cache.through(project, JSON.stringify(question), compute).catch((err: unknown) => {
      throw classifyPgError(err);
    });
  }
}

function selection(q: { filter?: string[] | undefined; bots: Selection['bots'] }): Selection {
  return { filters: parseFilters(q.filter), bots: q.bots };
}

/** The selection as cache-key text: filters in their canonical spelling, in order, and bots. */
function key(sel: Selection): [string[], string] {
  return [sel.filters.map(formatFilter), sel.bots];
}
