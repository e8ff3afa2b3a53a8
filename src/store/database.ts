import type pg from 'pg';
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config/load.ts';
import type { HealthCheck } from '../observability/health.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded-postgres.ts';
import { backfillInBackground } from './dimension-backfill.ts';
import { migrate } from './migrate.ts';
import { createPool } from './pool.ts';

export interface Database {
  pool: pg.Pool;
  /** Where PostgreSQL is, for the startup line (no password). */
  description: string;
  health: HealthCheck;
  stop(): Promise<void>;
}

/**
 * Opens PostgreSQL — the embedded server in the data directory, or the external one from
 * DATABASE_URL / DB_* — and brings the schema up to date, and with `deriveStoredEvents` the
 * events stored before the web dimensions existed (in the background).
 */
export async function openDatabase(
  config: DatabaseConfig,
  options: {
    poolSize: number;
    applicationName: string;
    logger: Logger;
    /** PostgreSQL ends a session idle inside a transaction this long (a frozen processor's locks). */
    idleInTransactionTimeoutMs?: number;
    /**
     * Derive the dimensions of events stored before there were any, in the background on a pool
     * of its own (dimension-backfill.ts): the roles that write (`tally start`, `tally process`).
     */
    deriveStoredEvents?: boolean;
  },
): Promise<Database> {
  let embedded: EmbeddedPostgresHandle | undefined;
  let connectionString: string;
  let description: string;
  if (config.kind === 'embedded') {
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      log: (line) => options.logger.info(line),
    });
    connectionString = embedded.connectionString;
    description = `embedded PostgreSQL on 127.0.0.1:${embedded.port} (data in ${config.dataDir}/pg)`;
  } else {
    connectionString = config.connectionString;
    const url = new URL(config.connectionString);
    description = `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}`;
  }
  const pool = createPool(
    {
      connectionString,
      max: options.poolSize,
      applicationName: options.applicationName,
      idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs,
    },
    (err) => options.logger.warn({ err }, 'idle PostgreSQL connection failed'),
  );
  try {
    const { applied } = await migrate(pool);
    if (applied.length > 0) options.logger.info({ applied }, 'database migrated');
  } catch (err) {
    await pool.end().catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
  const backfill = options.deriveStoredEvents
    ? backfillInBackground(connectionString, options.applicationName, options.logger)
    : undefined;
  let stopped: Promise<void> | undefined;
  return {
    pool,
    description,
    health: {
      name: 'postgres',
      async check() {
        await pool.query('SELECT 1');
        return 'ok';
      },
    },
    stop() {
      stopped ??= (async () => {
        await backfill?.stop();
        await pool.end().catch(() => undefined);
        await embedded?.stop();
      })();
      return stopped;
    },
  };
}
