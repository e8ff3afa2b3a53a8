import pg from 'pg';

// Bigint counts come back as strings by default; Tally's counts fit in a JS number.
const INT8_OID = 20;
const parseInt8 = (v: string): number => Number(v);
function getTypeParser(oid: number, format?: 'text' | 'binary'): unknown {
  return oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format);
}
const types: pg.CustomTypesConfig = { getTypeParser };

/**
 * How long one statement may run on Tally's pools (PostgreSQL's statement_timeout). A statement
 * stopped by it fails with SQLSTATE 57014, TALLY_DB_TIMEOUT (pg-errors.ts; docs/errors.md says
 * how often a batch is retried then). `tally sessions rebuild` lifts it for its transaction.
 */
export const STATEMENT_TIMEOUT_MS = 60_000;

export interface PoolOptions {
  connectionString: string;
  max: number;
  applicationName: string;
  idleInTransactionTimeoutMs?: number;
}

/** Creates a pg pool whose idle-client errors are reported instead of crashing the process. */
export function createPool(options: PoolOptions, onError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    application_name: options.applicationName,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    // Statements that hang (a lock, a stuck server) fail instead of holding a batch forever.
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    types,
  });
  pool.on('error', onError);
  // TRICKY: a checked-out client whose server goes away between two queries (PostgreSQL stopped
  // mid-transaction) emits 'error' outside any query; without a listener that is an uncaught
  // exception. The query in flight, or the next one, still fails and is retried by its caller.
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}
