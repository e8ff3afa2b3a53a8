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

/**
 * How long one statement may wait for one lock on Tally's pools (PostgreSQL's lock_timeout), below
 * STATEMENT_TIMEOUT_MS so that a wait fails first, with SQLSTATE 55P03 (TALLY_DB_UNAVAILABLE,
 * retried without bound: the holder finishes some day), and a statement timeout then means the
 * work itself was too slow, which the processor retries only a few times (docs/errors.md). A batch
 * waits at a lock held by `tally sessions rebuild` (its project's visits), `tally projects move`
 * (the tables) or another batch (rows it also updates).
 *
 * TRICKY: every user of the pool gets it, and it bounds each lock wait even where
 * statement_timeout is lifted. Those users wait only for locks batches hold for one transaction,
 * or for each other: a rebuild (the version row, the visits lock), the move's LOCK TABLE,
 * migration 017's index build (the events table); the advisory locks of migrate.ts and
 * dimension-backfill.ts (a second instance starting while the first still migrates) were bounded
 * by statement_timeout already. Such a wait past 20 s fails the command with
 * TALLY_DB_UNAVAILABLE, and running it again is safe (each is one transaction).
 */
export const LOCK_TIMEOUT_MS = 20_000;

export interface PoolOptions {
  connectionString: string;
  max: number;
  applicationName: string;
  idleInTransactionTimeoutMs?: number;
  /** How long a connection may take (default 5 s); a read replica's is short, the primary then answers. */
  connectionTimeoutMs?: number;
}

/**
 * The settings every connection of Tally's gets, a pool's or a lone client's (the read model's
 * load runs on a client of its own in a worker thread: src/query/columnar/load-worker.ts).
 */
export function clientConfig(options: Omit<PoolOptions, 'max'>): pg.ClientConfig {
  return {
    connectionString: options.connectionString,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5000,
    // Statements that hang (a lock, a stuck server) fail instead of holding a batch forever.
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // Lock waits fail sooner, as retriable without bound (LOCK_TIMEOUT_MS).
    lock_timeout: LOCK_TIMEOUT_MS,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    types,
  };
}

/** Creates a pg pool whose idle-client errors are reported instead of crashing the process. */
export function createPool(options: PoolOptions, onError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(options), max: options.max, idleTimeoutMillis: 30000 });
  pool.on('error', onError);
  // TRICKY: a checked-out client whose server goes away between two queries (PostgreSQL stopped
  // mid-transaction) emits 'error' outside any query; without a listener that is an uncaught
  // exception. The query in flight, or the next one, still fails and is retried by its caller.
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}
