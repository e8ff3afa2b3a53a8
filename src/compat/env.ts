import type { RawConfig } from '../config/schema.ts';

/*
 * The earlier systems' environment variables (README.md, "Compatibility with the earlier
 * systems"): a deployment configured for one of them starts Tally unchanged. Tally's own
 * variable, where set, always wins over these.
 */

/**
 * The PostgreSQL URL that `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD` and `DB_NAME` name, each
 * missing one taking the earlier system's default; undefined when none of them is set.
 */
export function databaseUrlFromDbVariables(raw: RawConfig): string | undefined {
  const anyDbVar = [raw.DB_HOST, raw.DB_PORT, raw.DB_USER, raw.DB_PASSWORD, raw.DB_NAME].some(
    (v) => v !== undefined,
  );
  if (!anyDbVar) return undefined;
  const url = new URL('postgresql://localhost');
  url.hostname = raw.DB_HOST ?? 'localhost';
  url.port = String(raw.DB_PORT ?? 5432);
  url.username = encodeURIComponent(raw.DB_USER ?? 'postgres');
  url.password = encodeURIComponent(raw.DB_PASSWORD ?? 'postgres');
  url.pathname = `/${encodeURIComponent(raw.DB_NAME ?? 'analytics')}`;
  return url.toString();
}

/** The broker list: `KAFKA_BROKERS`, else its singular spelling `KAFKA_BROKER`. */
export function kafkaBrokerList(raw: RawConfig): string | undefined {
  return raw.KAFKA_BROKERS ?? raw.KAFKA_BROKER;
}

/** The Redis URL that `REDIS_ADDR` (`host:port` or a URL) or `REDIS_HOST`/`REDIS_PORT` name, if any. */
export function redisUrlFromAddress(raw: RawConfig): string | undefined {
  if (raw.REDIS_ADDR) return raw.REDIS_ADDR.includes('://') ? raw.REDIS_ADDR : `redis://${raw.REDIS_ADDR}`;
  if (raw.REDIS_HOST) return `redis://${raw.REDIS_HOST}:${raw.REDIS_PORT ?? 6379}`;
  return undefined;
}
