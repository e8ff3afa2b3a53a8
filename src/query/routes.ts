import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { EventsStore } from './events-store.ts';
import {
  errorResponses,
  EventTypesResponse,
  LimitQuery,
  RangeQuery,
  SummaryResponse,
  TimeseriesQuery,
  TimeseriesResponse,
  TopPagesResponse,
  UserEventsQuery,
  UserEventsResponse,
  UserParams,
} from './schemas.ts';
import { resolveRange, type StatsService } from './stats-service.ts';

export interface QueryRoutesDeps {
  stats: StatsService;
  events: EventsStore;
  projectOf: (request: FastifyRequest) => string;
}

/** The REST query API under /v1 (see DESIGN.md "HTTP API"). */
export function queryRoutes(deps: QueryRoutesDeps) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    const tags = ['query'];
    app.get<{ Querystring: Static<typeof RangeQuery> }>(
      '/v1/stats/summary',
      {
        schema: {
          tags,
          summary: 'Events, page views and exact unique users in a range',
          querystring: RangeQuery,
          response: { 200: SummaryResponse, ...errorResponses },
        },
      },
      (request) => deps.stats.summary(deps.projectOf(request), resolveRange(request.query)),
    );
    app.get<{ Querystring: Static<typeof TimeseriesQuery> }>(
      '/v1/stats/timeseries',
      {
        schema: {
          tags,
          summary: 'A metric per minute, hour or day, zero-filled, in any IANA zone',
          querystring: TimeseriesQuery,
          response: { 200: TimeseriesResponse, ...errorResponses },
        },
      },
      (request) => {
        const q = request.query;
        return deps.stats.timeseries(deps.projectOf(request), resolveRange(q), {
          metric: q.metric,
          interval: q.interval,
          tz: q.tz,
          eventType: q.event_type,
          pageUrl: q.page_url,
        });
      },
    );
    app.get<{ Querystring: Static<typeof LimitQuery> }>(
      '/v1/stats/top-pages',
      {
        schema: {
          tags,
          summary: 'Most viewed pages',
          querystring: LimitQuery,
          response: { 200: TopPagesResponse, ...errorResponses },
        },
      },
      (request) =>
        deps.stats.topPages(deps.projectOf(request), resolveRange(request.query), request.query.limit),
    );
    app.get<{ Querystring: Static<typeof LimitQuery> }>(
      '/v1/stats/event-types',
      {
        schema: {
          tags,
          summary: 'Event counts by type',
          querystring: LimitQuery,
          response: { 200: EventTypesResponse, ...errorResponses },
        },
      },
      (request) =>
        deps.stats.eventTypes(deps.projectOf(request), resolveRange(request.query), request.query.limit),
    );
    app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof UserEventsQuery> }>(
      '/v1/users/:user_id/events',
      {
        schema: {
          tags,
          summary: "A user's raw events, newest first",
          params: UserParams,
          querystring: UserEventsQuery,
          response: { 200: UserEventsResponse, ...errorResponses },
        },
      },
      async (request) => ({
        user_id: request.params.user_id,
        events: await deps.events.userEvents(
          deps.projectOf(request),
          request.params.user_id,
          request.query.limit,
        ),
      }),
    );
  };
}
