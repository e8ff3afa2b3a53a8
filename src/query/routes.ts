import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

/** The JSON of near-cache answers, which are frozen and shared by every hit (cache.ts). */
type Json = ReturnType<FastifyReply['serialize']>;
const serialized = new WeakMap<object, Json>();

/**
 * Sends an answer through the route's response schema. A frozen answer is one the near cache
 * hands out again and again, so its JSON is kept with it (weakly, gone with the entry) and later
 * hits skip serialization: for 720 hourly points that was over a third of a cached request's time.
 */
function sendAnswer(reply: FastifyReply, answer: object): Json {
  let body = serialized.get(answer);
  if (body === undefined) {
    body = reply.serialize(answer);
    if (Object.isFrozen(answer)) serialized.set(answer, body);
  }
  void reply.type('application/json; charset=utf-8');
  return body;
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
      async (request, reply) => sendAnswer(reply, await query.summary(projectOf(request), request.query)),
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
      async (request, reply) => sendAnswer(reply, await query.timeseries(projectOf(request), request.query)),
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
      async (request, reply) => sendAnswer(reply, await query.topPages(projectOf(request), request.query)),
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
      async (request, reply) => sendAnswer(reply, await query.eventTypes(projectOf(request), request.query)),
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
      async (request, reply) =>
        sendAnswer(
          reply,
          await query.userEvents(projectOf(request), { ...request.query, ...request.params }),
        ),
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
      async (request, reply) => {
        const body = await readGetBody(request.raw, request.headers);
        return sendAnswer(
          reply,
          await query.eventCount(projectOf(request), {
            ...body,
            ...(request.query as Record<string, unknown>),
          }),
        );
      },
    );
  };
}
