import { TallyError } from '../errors/tally-error.ts';
import { STATEMENT_TIMEOUT_MS } from './pool.ts';

/** SQLSTATE query_canceled: statement_timeout stopped the statement (or a cancel request did). */
export const QUERY_CANCELED = '57014';

const RETRIABLE_SQLSTATE_CLASSES = ['08', '53', '57', '58'];
// 25P03: the server ended a session idle in a transaction (idle_in_transaction_session_timeout).
const RETRIABLE_SQLSTATES = new Set(['40001', '40P01', '55P03', '55006', '25P03']);
const RETRIABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
]);

/**
 * Wraps a PostgreSQL or connection error as a TallyError that says whether retrying may help:
 * lost connections, server shutdown, deadlocks and serialization failures may
 * (TALLY_DB_UNAVAILABLE), and so may a statement timeout (TALLY_DB_TIMEOUT); constraint or data
 * errors will not (TALLY_DB_ERROR).
 */
export function classifyPgError(err: unknown): TallyError {
  if (err instanceof TallyError) return err;
  const e = err as { code?: string; message?: string };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = e.message ?? String(err);
  // Its own code: a timeout may pass (a busy server) or come back every time (a statement too
  // large for the limit), so callers bound its retries. A lock wait fails before it, as 55P03
  // (pool.ts's lock_timeout), and is retried like any transient error.
  if (code === QUERY_CANCELED) {
    // A cancel request (pg_cancel_backend) gives 57014 too, and other pools set other limits:
    // the limit is named only for the message statement_timeout gives.
    const limit = /statement timeout/i.test(message)
      ? ` (statement_timeout is ${STATEMENT_TIMEOUT_MS / 1000} s)`
      : '';
    return new TallyError('TALLY_DB_TIMEOUT', `PostgreSQL: ${message}${limit}`, { cause: err });
  }
  const retriable =
    RETRIABLE_NODE_CODES.has(code) ||
    RETRIABLE_SQLSTATES.has(code) ||
    (code.length === 5 && RETRIABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) ||
    /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect|Connection ended/i.test(
      message,
    );
  return new TallyError(retriable ? 'TALLY_DB_UNAVAILABLE' : 'TALLY_DB_ERROR', `PostgreSQL: ${message}`, {
    cause: err,
  });
}

/** Whether `err` came from PostgreSQL (a SQLSTATE) or from the connection to it. */
export function isPgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (/^[0-9A-Z]{5}$/.test(code) || RETRIABLE_NODE_CODES.has(code));
}
