/**
 * Every error Tally raises on purpose carries a stable code from `ERROR_CODES`, an HTTP status
 * for the API layer, and whether retrying the same operation may succeed.
 * The codes are documented in docs/errors.md; keep the two in step.
 */
export const ERROR_CODES = {
  TALLY_CONFIG_INVALID: { status: 500, retriable: false },
  // 503: the server, not the request, is wrong, and the client should keep the events and send them
  // again once an operator fixed it; no retry inside the process helps (its own setting must change).
  TALLY_SESSION_TIMEOUT_MISMATCH: { status: 503, retriable: false },
  TALLY_PORT_IN_USE: { status: 500, retriable: false },
  TALLY_VALIDATION_FAILED: { status: 400, retriable: false },
  TALLY_INVALID_JSON: { status: 400, retriable: false },
  TALLY_INVALID_QUERY: { status: 400, retriable: false },
  TALLY_UNSUPPORTED_FILTER: { status: 400, retriable: false },
  TALLY_RAW_UNAVAILABLE: { status: 400, retriable: false },
  TALLY_BODY_TOO_LARGE: { status: 413, retriable: false },
  TALLY_TOO_MANY_EVENTS: { status: 413, retriable: false },
  TALLY_UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false },
  TALLY_UNSUPPORTED_ENCODING: { status: 415, retriable: false },
  TALLY_NOT_FOUND: { status: 404, retriable: false },
  TALLY_UNAUTHORIZED: { status: 401, retriable: false },
  TALLY_FORBIDDEN: { status: 403, retriable: false },
  TALLY_RATE_LIMITED: { status: 429, retriable: true },
  TALLY_UNAVAILABLE: { status: 503, retriable: true },
  TALLY_SHUTTING_DOWN: { status: 503, retriable: true },
  TALLY_DB_UNAVAILABLE: { status: 503, retriable: true },
  // A statement ran past statement_timeout: retried, but a batch only a few times
  // (MAX_STATEMENT_TIMEOUTS in src/process/batch-processor.ts).
  TALLY_DB_TIMEOUT: { status: 503, retriable: true },
  TALLY_DB_ERROR: { status: 500, retriable: false },
  TALLY_KAFKA_UNAVAILABLE: { status: 503, retriable: true },
  TALLY_FENCED: { status: 409, retriable: false },
  TALLY_INTERNAL: { status: 500, retriable: false },
  TALLY_ALREADY_RUNNING: { status: 409, retriable: false },
  TALLY_PROJECT_HAS_DATA: { status: 409, retriable: false },
  TALLY_PROJECT_EMPTY: { status: 404, retriable: false },
  // A user deletion that could not be exact (events counted without raw rows); the same request
  // with allow_inexact goes through.
  TALLY_DELETE_INEXACT: { status: 409, retriable: false },
  // A question refused before it runs: it would read more than the server's limit allows.
  TALLY_QUERY_TOO_EXPENSIVE: { status: 422, retriable: false },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldError {
  /** Position of the item in the request (0 for a single event). */
  index: number;
  field: string;
  code: string;
  message: string;
}

export class TallyError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly retriable: boolean;
  readonly details: readonly FieldError[] | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: FieldError[] } = {}) {
    super(message, { cause: options.cause });
    this.name = 'TallyError';
    this.code = code;
    this.statusCode = ERROR_CODES[code].status;
    this.retriable = ERROR_CODES[code].retriable;
    this.details = options.details;
  }
}

export function isRetriable(err: unknown): boolean {
  return err instanceof TallyError && err.retriable;
}
