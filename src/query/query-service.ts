import type { Static } from '@sinclair/typebox';
import { classifyPgError } from '../store/pg-errors.ts';
import type { QueryCache } from './cache.ts';
import { readBreakdown } from './breakdown-service.ts';
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
import type { Selection } from './scoped-stats.ts';
import { resolveRange } from './stats-service.ts';
import { checkQuery } from './validate.ts';
import type { ReadInfo, ReplicaReads } from './replica-reads.ts';
import type { Queryable } from '../store/read-snapshot.ts';
import type { Answerers } from './answerers.ts';

export interface QueryServiceDeps extends Answerers {
  cache: QueryCache;
  /** TALLY_READ_DATABASE_URL: a replica that answers cache misses but `consistency=strong` ones. */
  replica?: {
    reads: ReplicaReads;
    /** The services over one snapshot of the replica. */
    answerers: (db: Queryable) => Answerers;
  };
  now?: () => number;
}

type Input = Record<string, unknown>;

/**
 * Every question Tally answers, for REST and gRPC alike: validates the request against the
 * query schemas (the REST routes declare the same ones), resolves the range, and answers through
 * the cache from the rollups (or the raw table for per-user questions). With a replica, a cache
 * miss reads it unless the question says `consistency=strong` (replica-reads.ts says when else
 * the primary answers); `info`, when given, learns who answered and how far behind.
 */
export class QueryService {
  readonly #deps: QueryServiceDeps;

  constructor(deps: QueryServiceDeps) {
    this.#deps = deps;
  }

  async summary(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(SummaryQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['summary', range.from, range.to, key(sel)], input, info, (a) =>
      a.stats.summary(project, range, sel),
    );
  }

  async timeseries(project: string, input: Input, info?: ReadInfo) {
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
    return this.#cached(project, ['timeseries', range.from, range.to, query, key(sel)], input, info, (a) =>
      a.stats.timeseries(project, range, sel, query),
    );
  }

  async topPages(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['top-pages', range.from, range.to, q.limit, key(sel)], input, info, (a) =>
      a.stats.topPages(project, range, sel, q.limit),
    );
  }

  async eventTypes(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(LimitQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    return this.#cached(project, ['event-types', range.from, range.to, q.limit, key(sel)], input, info, (a) =>
      a.stats.eventTypes(project, range, sel, q.limit),
    );
  }

  /** Issue 20: one dimension's values with their metrics, under filters, sorted and paged. */
  async breakdown(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(BreakdownQuery, input);
    const range = this.#range(q);
    const sel = selection(q);
    const question = readBreakdown(q);
    const { metrics, sort, limit, page } = question;
    const cacheKey = ['breakdown', range.from, range.to, q.dimension, metrics, sort, limit, page, key(sel)];
    return this.#cached(project, cacheKey, input, info, (a) =>
      a.breakdown.breakdown(project, range, sel, question),
    );
  }

  /** Issue 21: how many users (or visits) went through 2–10 steps, in order or not, within a window. */
  async funnel(project: string, input: Input, info?: ReadInfo) {
    const q = this.#deps.product.checkFunnel(input);
    return this.#cached(project, q.key, input, info, (a) => a.product.checkFunnel(input).answer(project));
  }

  /** Issue 21: cohorts by first seen (or first doing an event), and who came back in each later period. */
  async retention(project: string, input: Input, info?: ReadInfo) {
    const q = this.#deps.product.checkRetention(input);
    return this.#cached(project, q.key, input, info, (a) => a.product.checkRetention(input).answer(project));
  }

  /** Issue 21: the most common pages (or events) after or before one, within the visit. */
  async paths(project: string, input: Input, info?: ReadInfo) {
    const q = this.#deps.product.checkPaths(input);
    return this.#cached(project, q.key, input, info, (a) => a.product.checkPaths(input).answer(project));
  }

  async userEvents(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(UserEventsRequest, input);
    return this.#cached(project, ['user-events', q.user_id, q.limit], input, info, async (a) => ({
      user_id: q.user_id,
      events: await a.events.userEvents(project, q.user_id, q.limit),
    }));
  }

  /** Seed 003: how many events this user had on this page. */
  async eventCount(project: string, input: Input, info?: ReadInfo) {
    const q = checkQuery(EventCountQuery, input);
    return this.#cached(project, ['event-count', q.user_id, q.page_url], input, info, async (a) => ({
      user_id: q.user_id,
      page_url: q.page_url,
      count: await a.events.userPageCount(project, q.user_id, q.page_url),
    }));
  }

  /** `q.tz` where the question has a zone (timeseries), else UTC: where a date-only day starts. */
  #range(q: Static<typeof RangeQuery> & { tz?: string }) {
    return resolveRange(q, this.#deps.now?.() ?? Date.now());
  }

  #cached<T>(
    project: string,
    question: unknown[],
    input: Input,
    info: ReadInfo | undefined,
    compute: (a: Answerers) => Promise<T>,
  ): Promise<T> {
    const read = info ?? { source: 'cache', lagMs: 0 };
    read.source = 'cache';
    read.lagMs = 0;
    const { replica } = this.#deps;
    const strong = input.consistency === 'strong';
    return this.#deps.cache
      .throughAt(project, JSON.stringify(question), async (known) => {
        if (replica !== undefined && !strong) {
          const answer = await replica.reads.answer(project, known, (db) => compute(replica.answerers(db)));
          if (answer !== undefined) {
            // No version: no statement ran on the replica, the read model (the primary's) answered.
            read.source = answer.version === undefined ? 'primary' : 'replica';
            read.lagMs = answer.lagMs;
            return answer;
          }
        }
        read.source = 'primary';
        return { value: await compute(this.#deps) };
      })
      .catch((err: unknown) => {
        // PostgreSQL down → TALLY_DB_UNAVAILABLE (503 with Retry-After, gRPC UNAVAILABLE), not a 500.
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
