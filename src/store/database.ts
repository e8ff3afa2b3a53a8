import type pg from 'pg';
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config/load.ts';
import type { HealthCheck } from '../observability/health.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded-postgres.ts';
import { backfillDimensions } from './dimension-backfill.ts';
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
 * DATABASE_URL / DB_* — and brings the schema and the stored events up to date (migrations, then
 * the dimensions of events stored before there were any: dimension-backfill.ts).
 */
export async function openDatabase(
  config: DatabaseConfig,
  options: {
    poolSize: number;
    applicationName: string;
    logger: Logger;
    /** PostgreSQL ends a session idle inside a transaction this long (a frozen processor's locks). */
    idleInTransactionTimeoutMs?: number;
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
    await backfillDimensions(pool, options.logger);
  } catch (err) {
    await pool.end().catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
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
        await pool.end().catch(() => undefined);
        await embedded?.stop();
      })();
      return stopped;
    },
  };
}
