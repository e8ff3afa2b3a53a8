import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { TallyError } from '../../errors/tally-error.ts';
import type { QueryService } from '../query-service.ts';
import type { ReadInfo } from '../replica-reads.ts';

type Message = Record<string, unknown>;

/** gRPC status for each HTTP status a TallyError carries. */
const STATUS_BY_HTTP: Record<number, grpc.status> = {
  400: grpc.status.INVALID_ARGUMENT,
  401: grpc.status.UNAUTHENTICATED,
  403: grpc.status.PERMISSION_DENIED,
  404: grpc.status.NOT_FOUND,
  409: grpc.status.ABORTED,
  413: grpc.status.INVALID_ARGUMENT,
  422: grpc.status.RESOURCE_EXHAUSTED,
  429: grpc.status.RESOURCE_EXHAUSTED,
  503: grpc.status.UNAVAILABLE,
};

/**
 * proto3 has no "absent" for scalars: an empty string or a zero is "not given", so the REST
 * defaults apply. What remains goes through the same validation as a REST query string.
 */
function given(request: Message): Message {
  const out: Message = {};
  for (const [k, v] of Object.entries(request)) {
    if (v === '' || v === 0 || v === null || v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    // REST repeats `filter`; the proto field is the plural `filters`.
    out[k === 'filters' ? 'filter' : k] = v;
  }
  return out;
}

export interface HandlerDeps {
  query: QueryService;
  projectOf: (metadata: grpc.Metadata) => string;
  logger: Logger;
}

/** The tally.v1.AnalyticsService implementation: each RPC is one QueryService call. */
export function analyticsHandlers(deps: HandlerDeps): grpc.UntypedServiceImplementation {
  const { query } = deps;
  const unary =
    (
      answer: (project: string, request: Message, info: ReadInfo) => Promise<unknown>,
    ): grpc.handleUnaryCall<Message, unknown> =>
    (call, callback) => {
      let project: string;
      try {
        project = deps.projectOf(call.metadata);
      } catch (err) {
        callback(toServiceError(err, deps.logger));
        return;
      }
      // As REST's `consistency=strong`, in metadata (no proto field); who answered, in the trailer.
      const request = given(call.request);
      const consistency = call.metadata.get('tally-consistency')[0];
      if (typeof consistency === 'string') request.consistency = consistency;
      const info: ReadInfo = { source: 'cache', lagMs: 0 };
      answer(project, request, info).then(
        (value) => {
          const trailer = new grpc.Metadata();
          trailer.set('tally-read-source', info.source);
          trailer.set('tally-replica-lag-ms', String(info.lagMs));
          callback(null, value, trailer);
        },
        (err: unknown) => callback(toServiceError(err, deps.logger)),
      );
    };
  return {
    GetSummary: unary((p, r, i) => query.summary(p, r, i)),
    GetTimeseries: unary((p, r, i) => query.timeseries(p, r, i)),
    GetTopPages: unary((p, r, i) => query.topPages(p, r, i)),
    GetEventTypes: unary((p, r, i) => query.eventTypes(p, r, i)),
    GetUserEvents: unary(async (p, r, i) => {
      const answer = await query.userEvents(p, r, i);
      return {
        user_id: answer.user_id,
        events: answer.events.map((e) => ({
          ...e,
          page_url: e.page_url ?? '',
          referrer: e.referrer ?? '',
          session_id: e.session_id ?? '',
          service: e.service ?? '',
          properties_json: e.properties === null ? '' : JSON.stringify(e.properties),
        })),
      };
    }),
    GetEventCount: unary((p, r, i) => query.eventCount(p, r, i)),
    GetBreakdown: unary((p, r, i) => query.breakdown(p, r, i)),
    GetFunnel: unary((p, r, i) => {
      const steps = Array.isArray(r.steps) ? (r.steps as Message[]).map(given) : r.steps;
      return query.funnel(p, { ...r, ...(steps === undefined ? {} : { steps }) }, i);
    }),
    GetRetention: unary(async (p, r, i) => {
      const answer = await query.retention(p, r, i);
      return {
        ...answer,
        cohorts: answer.cohorts.map((c) => ({
          start: c.start,
          date: c.date,
          users: c.users,
          periods: c.returned.map((n, k) =>
            n === null ? {} : { returned: n, retention: c.retention[k] ?? undefined },
          ),
        })),
      };
    }),
    GetPaths: unary(async (p, r, i) => {
      const answer = await query.paths(p, r, i);
      return {
        ...answer,
        levels: answer.levels.map((l) => ({
          ...l,
          items: l.items.map((i) => ({
            count: i.count,
            percentage: i.percentage ?? undefined,
            path: i.path.map((v) => (v === null ? {} : { value: v })),
          })),
        })),
      };
    }),
  };
}

/**
 * A TallyError keeps its meaning (INVALID_ARGUMENT for bad input, with the field first in the
 * message: "from: from must be earlier than to") and its code in the `tally-error-code` trailer.
 */
export function toServiceError(err: unknown, logger: Logger): Partial<grpc.ServiceError> {
  const metadata = new grpc.Metadata();
  if (err instanceof TallyError) {
    metadata.set('tally-error-code', err.code);
    const code = STATUS_BY_HTTP[err.statusCode] ?? grpc.status.INTERNAL;
    if (code === grpc.status.INTERNAL) logger.error({ err }, 'gRPC call failed');
    const fields = err.details?.map((d) => `${d.field}: ${d.message}`).join('; ');
    return { code, details: fields || err.message, metadata };
  }
  logger.error({ err }, 'gRPC call failed');
  metadata.set('tally-error-code', 'TALLY_INTERNAL');
  return { code: grpc.status.INTERNAL, details: 'internal error', metadata };
}
