import type { Static } from '@sinclair/typebox';
import { classifyPgError } from '../store/pg-errors.ts';
import type { QueryCache } from './cache.ts';
import type { EventsStore } from '../store/events-store.ts';
import { EventCountQuery, LimitQuery, RangeQuery, TimeseriesQuery, UserEventsRequest } from './schemas.ts';
import { resolveRange, type StatsService } from './stats-service.ts';
import { checkQuery } from './validate.ts';

export interface QueryServiceDeps {
  stats: StatsService;
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
    const range = this.#range(checkQuery(RangeQuery, input));
    return this.#cached(project, ['summary', range.from, range.to], () =>
      this.#deps.stats.summary(project, range),
    );
  }

  async timeseries(project: string, input: Input) {
    const q = checkQuery(TimeseriesQuery, input);
    const range = this.#range(q);
    const query = {
      metric: q.metric,
      interval: q.interval,
      tz: q.tz,
      eventType: q.event_type,
      pageUrl: q.page_url,
    };
    return this.#cached(project, ['timeseries', range.from, range.to, query], () =>
      this.#deps.stats.timeseries(project, range, query),
    );
  }

  async topPages(project: string, input: Input) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    return this.#cached(project, ['top-pages', range.from, range.to, q.limit], () =>
      this.#deps.stats.topPages(project, range, q.limit),
    );
  }

  async eventTypes(project: string, input: Input) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    return this.#cached(project, ['event-types', range.from, range.to, q.limit], () =>
      this.#deps.stats.eventTypes(project, range, q.limit),
    );
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
