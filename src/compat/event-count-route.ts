import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorSchema } from '../http/schemas.ts';
import type { QueryService } from '../query/query-service.ts';
import type { ReadInfo } from '../query/replica-reads.ts';
import { errorResponses, EventCountQuery, EventCountResponse } from '../query/schemas.ts';
import { readGetBody } from './get-body.ts';

export interface EventCountRouteDeps {
  query: QueryService;
  projectOf: (request: FastifyRequest) => string;
  /** Sends an answer through the route's response schema, as the other query routes do. */
  send: (reply: FastifyReply, answer: object, info?: ReadInfo) => ReturnType<FastifyReply['serialize']>;
}

/**
 * Adds `GET /analytics/events` to `app`: the question an earlier system's gateway asks (README.md,
 * "Compatibility with the earlier systems"), how many events a user had on a page. Its clients
 * send `user_id` and `page_url` in the query string or as a JSON body on the GET; both work.
 */
export function addEventCountRoute(app: FastifyInstance, deps: EventCountRouteDeps): void {
  const { query, projectOf, send } = deps;
  app.get(
    '/analytics/events',
    {
      schema: {
        tags: ['query'],
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
      const info: ReadInfo = { source: 'cache', lagMs: 0 };
      const input = { ...body, ...(request.query as Record<string, unknown>) };
      return send(reply, await query.eventCount(projectOf(request), input, info), info);
    },
  );
}
