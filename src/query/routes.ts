import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  errorResponses,
  EventCountQuery,
  EventCountResponse,
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
import { ErrorSchema } from '../http/schemas.ts';
import type { QueryService } from './query-service.ts';
import { readGetBody } from './get-body.ts';

export interface QueryRoutesDeps {
  query: QueryService;
  projectOf: (request: FastifyRequest) => string;
}

/** The REST query API under /v1 and seed 003's `GET /analytics/events` (see DESIGN.md "HTTP API"). */
export function queryRoutes(deps: QueryRoutesDeps) {
  const { query, projectOf } = deps;
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
      (request) => query.summary(projectOf(request), request.query),
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
      (request) => query.timeseries(projectOf(request), request.query),
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
      (request) => query.topPages(projectOf(request), request.query),
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
      (request) => query.eventTypes(projectOf(request), request.query),
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
      (request) => query.userEvents(projectOf(request), { ...request.query, ...request.params }),
    );
    app.get(
      '/analytics/events',
      {
        schema: {
          tags,
          summary: "Seed 003: the count of a user's events on a page",
          description:
            "Takes `user_id` and `page_url` from the query string or, as seed 003's gateway did, from a JSON " +
            'body sent with GET (`-H "Content-Type: application/json" -d \'{"user_id": ..., "page_url": ...}\'`). ' +
            'Query parameters win over body fields. The count covers all stored raw events of that user on ' +
            'exactly that page URL.',
          querystring: Type.Partial(EventCountQuery),
          // 400 also covers TALLY_INVALID_JSON (a body that does not parse).
          response: {
            200: EventCountResponse,
            ...errorResponses,
            413: { ...ErrorSchema, description: 'TALLY_BODY_TOO_LARGE: a GET body over 64 KiB' },
            415: { ...ErrorSchema, description: 'TALLY_UNSUPPORTED_MEDIA_TYPE: a GET body that is not JSON' },
          },
        },
      },
      async (request) => {
        const body = await readGetBody(request.raw, request.headers);
        return query.eventCount(projectOf(request), {
          ...body,
          ...(request.query as Record<string, unknown>),
        });
      },
    );
  };
}
