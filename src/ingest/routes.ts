import cors from '@fastify/cors';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { COMPAT_INGEST_ROUTES } from '../compat/ingest-routes.ts';
import { TallyError } from '../errors/tally-error.ts';
import { LIMITS } from '../event/limits.ts';
import type { Metrics } from '../observability/metrics.ts';
import { asksNotToTrack, browserOriginRefused, collectCorsOptions, originMatcher } from './collect-cors.ts';
import { clientAddress, type TrustedProxies } from './client-address.ts';
import { decompress, parseEvents } from './decode-body.ts';
import type { CountryLookup } from './geo.ts';
import type { IngestOutcome, IngestService, RequestOrigin } from './ingest-service.ts';
import { ingestResponseSchemas } from './schemas.ts';

export interface IngestRoutesDeps {
  ingest: IngestService;
  metrics: Metrics;
  maxBodyBytes: number;
  maxDecompressedBytes: number;
  maxEvents: number;
  /** Origins browsers may send beacons from (TALLY_CORS_ORIGINS); default `*`. */
  corsOrigins?: string;
  /** Drop beacons from browsers sending `DNT: 1` or `Sec-GPC: 1` (TALLY_HONOR_DNT). */
  honorDnt?: boolean;
  /** The country of a client address (TALLY_GEOIP_DATABASE); omitted: no lookups. */
  geo?: CountryLookup;
  /** Proxies whose X-Forwarded-For is believed (TALLY_TRUSTED_PROXIES); omitted: none. */
  trustedProxies?: TrustedProxies;
  /** Which project a request writes to (auth decides; `default` without keys). */
  projectOf: (request: FastifyRequest) => string;
  /** True while shutting down: new ingest requests get 503. */
  isStopping: () => boolean;
}

const JSON_TYPES = ['application/json', 'application/x-ndjson', 'application/ndjson', 'text/plain'];
const utf8 = new TextDecoder('utf-8', { fatal: true });
const NO_PROXIES: TrustedProxies = { empty: true, has: () => false };
const NO_COUNTRY = () => null;

/**
 * Ingest endpoints: `POST /v1/events` (Tally's own), the earlier systems' routes
 * (src/compat/ingest-routes.ts) and `POST /v1/collect` (browser beacons, text/plain).
 */
export function ingestRoutes(deps: IngestRoutesDeps) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    const corsOrigins = deps.corsOrigins ?? '*';
    const originAllowed = originMatcher(corsOrigins);
    await app.register(cors, collectCorsOptions(corsOrigins));
    app.removeAllContentTypeParsers();
    app.addContentTypeParser(
      JSON_TYPES,
      { parseAs: 'buffer', bodyLimit: deps.maxBodyBytes },
      (_req, body, done) => done(null, body),
    );

    const geo = deps.geo;
    const trusted = deps.trustedProxies ?? NO_PROXIES;
    // The User-Agent only for browser beacons (server-side senders set user_agent themselves);
    // the country for every route. TRICKY: the client address is used for the lookup and
    // dropped, never stored or logged (README.md, "Ingest").
    const origin = (request: FastifyRequest, browser: boolean): RequestOrigin => ({
      userAgent: browser ? headerUserAgent(request.headers['user-agent']) : null,
      country:
        geo === undefined
          ? NO_COUNTRY
          : () => {
              const address = clientAddress(
                request.socket.remoteAddress,
                request.headers['x-forwarded-for'],
                trusted,
              );
              return address === undefined ? null : geo.country(address);
            },
    });

    const handle = (route: string, successStatus: number, allowText: boolean) =>
      async function handler(request: FastifyRequest, reply: FastifyReply) {
        const started = performance.now();
        try {
          if (deps.isStopping())
            throw new TallyError('TALLY_SHUTTING_DOWN', 'Tally is shutting down; retry shortly');
          if (allowText && browserOriginRefused(request, originAllowed))
            throw new TallyError('TALLY_FORBIDDEN', 'this origin may not send events (TALLY_CORS_ORIGINS)');
          // Accepted but not recorded: the browser asked not to be tracked.
          if (allowText && deps.honorDnt === true && asksNotToTrack(request)) {
            deps.metrics.ingestRequests.inc({ route, status: '204' });
            return reply.code(204).send();
          }
          const contentType = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
          if (contentType === 'text/plain' && !allowText) {
            throw new TallyError(
              'TALLY_UNSUPPORTED_MEDIA_TYPE',
              `${route} takes application/json or application/x-ndjson`,
            );
          }
          const raw = await decompress(
            request.body as Buffer,
            request.headers['content-encoding'],
            deps.maxDecompressedBytes,
          );
          let text: string;
          try {
            text = utf8.decode(raw);
          } catch {
            throw new TallyError('TALLY_INVALID_JSON', 'request body is not valid UTF-8');
          }
          const ndjson = contentType === 'application/x-ndjson' || contentType === 'application/ndjson';
          const { items } = parseEvents(text, ndjson, deps.maxEvents);
          const outcome = await deps.ingest.ingest(
            deps.projectOf(request),
            items,
            origin(request, allowText),
          );
          if (outcome.accepted === 0) {
            throw new TallyError('TALLY_VALIDATION_FAILED', describeRejection(outcome), {
              details: outcome.rejected,
            });
          }
          deps.metrics.ingestRequests.inc({ route, status: String(successStatus) });
          return reply.code(successStatus).send(responseBody(outcome));
        } catch (err) {
          deps.metrics.ingestRequests.inc({
            route,
            status: String((err as { statusCode?: number }).statusCode ?? 500),
          });
          throw err;
        } finally {
          deps.metrics.ingestLatency.observe({ route }, (performance.now() - started) / 1000);
        }
      };

    const schema = (summary: string, status: number) => ({
      summary,
      tags: ['ingest'],
      consumes: JSON_TYPES,
      response: ingestResponseSchemas(status),
    });
    app.post(
      '/v1/events',
      { schema: schema('Ingest one event, a JSON array, or NDJSON', 202) },
      handle('/v1/events', 202, false),
    );
    for (const route of COMPAT_INGEST_ROUTES) {
      app.post(
        route.path,
        { schema: schema(route.summary, route.status) },
        handle(route.path, route.status, false),
      );
    }
    app.post(
      '/v1/collect',
      { schema: schema('Browser beacon (text/plain JSON)', 202) },
      handle('/v1/collect', 202, true),
    );
  };
}

function headerUserAgent(value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  return value.length > LIMITS.userAgent ? value.slice(0, LIMITS.userAgent) : value;
}

function responseBody(o: IngestOutcome) {
  return {
    accepted: o.accepted,
    ...(o.duplicates !== undefined ? { duplicates: o.duplicates } : {}),
    ...(o.dropped !== undefined ? { dropped: o.dropped } : {}),
    event_ids: o.eventIds,
    ...(o.rejected.length > 0 ? { rejected: o.rejected } : {}),
  };
}

function describeRejection(o: IngestOutcome): string {
  const first = o.rejected[0];
  const more = o.rejected.length > 1 ? ` (and ${o.rejected.length - 1} more problems)` : '';
  return first ? `event ${first.index}: ${first.message}${more}` : 'no valid events';
}
