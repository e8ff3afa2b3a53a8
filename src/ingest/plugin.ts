import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RawConfig } from '../config/schema.ts';
import { parseTrustedProxies } from './client-address.ts';
import { openCountryLookup, type CountryLookup } from './geo.ts';
import { IngestService, type EventSink } from './ingest-service.ts';
import { ingestRoutes } from './routes.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface IngestPluginDeps {
  raw: RawConfig;
  sink: EventSink;
  metrics: Metrics;
  /** Which project a request writes to (auth decides). */
  projectOf: (request: FastifyRequest) => string;
  isStopping: () => boolean;
}

/**
 * The ingest endpoints over a sink, as `tally start` (micro-batcher) and `tally ingest` (Kafka)
 * serve them. Registering it opens the country database (TALLY_GEOIP_DATABASE), once per app, so
 * both modes resolve `country` at ingest, before an event is batched or encoded for Kafka.
 */
export function ingestPlugin(deps: IngestPluginDeps): FastifyPluginAsync {
  return async function ingest(app) {
    const geo = await openCountryLookup(deps.raw.TALLY_GEOIP_DATABASE);
    await app.register(routesOf(deps, geo));
  };
}

function routesOf(deps: IngestPluginDeps, geo: CountryLookup | undefined): FastifyPluginAsync {
  const { raw, metrics } = deps;
  const ingest = new IngestService({
    sink: deps.sink,
    metrics,
    maxFutureSkewMs: raw.TALLY_MAX_FUTURE_SKEW_SEC * 1000,
  });
  return ingestRoutes({
    ingest,
    metrics,
    maxBodyBytes: raw.TALLY_MAX_BODY_BYTES,
    maxDecompressedBytes: raw.TALLY_MAX_DECOMPRESSED_BYTES,
    maxEvents: raw.TALLY_MAX_EVENTS_PER_REQUEST,
    corsOrigins: raw.TALLY_CORS_ORIGINS,
    honorDnt: raw.TALLY_HONOR_DNT,
    geo,
    // Validated at start by loadConfig (src/config/load.ts).
    trustedProxies: parseTrustedProxies(raw.TALLY_TRUSTED_PROXIES),
    projectOf: deps.projectOf,
    isStopping: deps.isStopping,
  });
}
