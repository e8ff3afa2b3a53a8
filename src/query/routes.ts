import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  BreakdownQuery,
  BreakdownResponse,
  errorResponses,
  EventTypesResponse,
  LimitQuery,
  SummaryQuery,
  SummaryResponse,
  TimeseriesQuery,
  TimeseriesResponse,
  TopPagesResponse,
  UserEventsQuery,
  UserEventsResponse,
  UserParams,
} from './schemas.ts';
import type { QueryService } from './query-service.ts';
import type { ReadInfo } from './replica-reads.ts';
import {
  FunnelBody,
  FunnelResponse,
  PathsQuery,
  productErrorResponses,
  PathsResponse,
  RetentionQuery,
  RetentionResponse,
} from './product/schemas.ts';
import { addEventCountRoute } from '../compat/event-count-route.ts';

export interface QueryRoutesDeps {
  query: QueryService;
  projectOf: (request: FastifyRequest) => string;
}

/** The JSON of near-cache answers, which are frozen and shared by every hit (cache.ts). */
type Json = ReturnType<FastifyReply['serialize']>;
const serialized = new WeakMap<object, Json>();

/** Who answered: filled in by QueryService, sent as headers. */
const readInfo = (): ReadInfo => ({ source: 'cache', lagMs: 0 });

/**
 * Sends an answer through the route's response schema, saying who answered it (`Tally-Read-Source`:
 * cache, primary or replica) and how far behind its data may be (`Tally-Replica-Lag-Ms`). A frozen answer is one the near cache
 * hands out again and again, so its JSON is kept with it (weakly, gone with the entry) and later
 * hits skip serialization, a large part of a cached request's time (figures: docs/benchmarks.md).
 */
function sendAnswer(reply: FastifyReply, answer: object, info?: ReadInfo): Json {
  if (info !== undefined) {
    void reply.header('tally-read-source', info.source);
    void reply.header('tally-replica-lag-ms', String(info.lagMs));
  }
  let body = serialized.get(answer);
  if (body === undefined) {
    body = reply.serialize(answer);
    if (Object.isFrozen(answer)) serialized.set(answer, body);
  }
  void reply.type('application/json; charset=utf-8');
  return body;
}

/**
 * The REST query API under /v1 (README.md, "Query"), and an earlier system's question
 * `GET /analytics/events` (src/compat/event-count-route.ts).
 */
export function queryRoutes(deps: QueryRoutesDeps) {
  const { query, projectOf } = deps;
  return async function plugin(app: FastifyInstance): Promise<void> {
    const tags = ['query'];
    // A lone `filter=…` arrives as a string; the schema (and gRPC) want a list.
    app.addHook('preValidation', async (request) => {
      const q = request.query as Record<string, unknown> | undefined;
      if (typeof q?.filter === 'string') q.filter = [q.filter];
    });
    app.get<{ Querystring: Static<typeof SummaryQuery> }>(
      '/v1/stats/summary',
      {
        schema: {
          tags,
          summary:
            'Events, page views, exact visitors and visits (bounce rate, duration) in a range, under filters',
          querystring: SummaryQuery,
          response: { 200: SummaryResponse, ...errorResponses },
        },
      },
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.summary(projectOf(request), request.query, info), info);
      },
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
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.timeseries(projectOf(request), request.query, info), info);
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
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.topPages(projectOf(request), request.query, info), info);
      },
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
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.eventTypes(projectOf(request), request.query, info), info);
      },
    );
    app.get<{ Querystring: Static<typeof BreakdownQuery> }>(
      '/v1/stats/breakdown',
      {
        schema: {
          tags,
          summary:
            'Visitors, visits, page views… by page, source, device, country or property, under filters',
          querystring: BreakdownQuery,
          response: { 200: BreakdownResponse, ...errorResponses },
        },
      },
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.breakdown(projectOf(request), request.query, info), info);
      },
    );
    app.post<{ Body: Static<typeof FunnelBody> }>(
      '/v1/stats/funnel',
      {
        schema: {
          tags,
          summary:
            'A funnel: users (or visits) through 2–10 steps in order (or any order) within a window, with conversion and median times, optionally broken down',
          body: FunnelBody,
          response: { 200: FunnelResponse, ...productErrorResponses },
        },
      },
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.funnel(projectOf(request), request.body, info), info);
      },
    );
    app.get<{ Querystring: Static<typeof RetentionQuery> }>(
      '/v1/stats/retention',
      {
        schema: {
          tags,
          summary:
            'Retention: cohorts by first seen (or first doing an event) per day, week or month, and the share back in each later period',
          querystring: RetentionQuery,
          response: { 200: RetentionResponse, ...productErrorResponses },
        },
      },
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.retention(projectOf(request), request.query, info), info);
      },
    );
    app.get<{ Querystring: Static<typeof PathsQuery> }>(
      '/v1/stats/paths',
      {
        schema: {
          tags,
          summary:
            'The most common pages (or events) after or before a page (or event), to depth 3, within the visit',
          querystring: PathsQuery,
          response: { 200: PathsResponse, ...productErrorResponses },
        },
      },
      async (request, reply) => {
        const info = readInfo();
        return sendAnswer(reply, await query.paths(projectOf(request), request.query, info), info);
      },
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
      async (request, reply) => {
        const info = readInfo();
        const input = { ...request.query, ...request.params };
        return sendAnswer(reply, await query.userEvents(projectOf(request), input, info), info);
      },
    );
    addEventCountRoute(app, { query, projectOf, send: sendAnswer });
  };
}
