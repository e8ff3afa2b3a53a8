import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { TallyError, type ErrorCode, type FieldError } from '../errors/tally-error.ts';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

// Fastify's own error codes, mapped onto Tally's.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'TALLY_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'TALLY_INVALID_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'TALLY_BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'TALLY_INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'TALLY_INVALID_JSON',
  FST_ERR_CTP_EMPTY_TYPE: 'TALLY_UNSUPPORTED_MEDIA_TYPE',
};

export interface ErrorBody {
  statusCode: number;
  code: string;
  error: string;
  message: string;
  errors?: FieldError[];
}

/** Tally's error JSON for `err`. */
export function errorBody(err: TallyError): ErrorBody {
  return {
    statusCode: err.statusCode,
    code: err.code,
    error: REASONS[err.statusCode] ?? 'Error',
    message: err.message,
    ...(err.details ? { errors: [...err.details] } : {}),
  };
}

/**
 * Retry-After (s) of the 503s that pass only once an operator acts, not in a second: a session
 * timeout mismatch (docs/errors.md) waits for a restart or a rebuild, so a client retrying every
 * second would spend its attempts before anyone could.
 */
const OPERATOR_RETRY_AFTER_S: Partial<Record<ErrorCode, number>> = {
  TALLY_SESSION_TIMEOUT_MISMATCH: 60,
};

/** Sends `err` as Tally's error JSON; 503s carry Retry-After. */
export function sendError(reply: FastifyReply, err: TallyError): FastifyReply {
  // The rate limiter sets its own Retry-After (seconds until the window resets).
  if ((err.statusCode === 503 || err.statusCode === 429) && !reply.hasHeader('retry-after'))
    void reply.header('retry-after', String(OPERATOR_RETRY_AFTER_S[err.code] ?? 1));
  return reply.code(err.statusCode).send(errorBody(err));
}

/** Every error leaves as `{statusCode, code, error, message, errors?}` with a TALLY_* code. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof TallyError) {
      if (error.statusCode >= 500) request.log.error({ err: error }, error.message);
      return sendError(reply, error);
    }
    if (error.validation) {
      const details = error.validation.map((v) => {
        const params = v.params ?? {};
        if (typeof params.additionalProperty === 'string') {
          const field = params.additionalProperty;
          return {
            index: 0,
            field,
            code: 'TALLY_INVALID_QUERY',
            message: `${field} is not a known parameter`,
          };
        }
        const field =
          (v.instancePath || '').replace(/^\//, '').replaceAll('/', '.') ||
          (typeof params.missingProperty === 'string' ? params.missingProperty : '(request)');
        const allowed = Array.isArray(params.allowedValues)
          ? `: one of ${params.allowedValues.join(', ')}`
          : '';
        return {
          index: 0,
          field,
          code: 'TALLY_INVALID_QUERY',
          message: `${field} ${v.message ?? 'is invalid'}${allowed}`,
        };
      });
      const where = error.validationContext ?? 'request';
      return sendError(
        reply,
        new TallyError(
          'TALLY_INVALID_QUERY',
          `invalid ${where}: ${details.map((d) => d.message).join('; ')}`,
          { details },
        ),
      );
    }
    const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
    if (mapped) return sendError(reply, new TallyError(mapped, error.message));
    if (error.statusCode !== undefined && error.statusCode < 500) {
      return sendError(
        reply,
        new TallyError(
          error.statusCode === 429 ? 'TALLY_RATE_LIMITED' : 'TALLY_VALIDATION_FAILED',
          error.message,
        ),
      );
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendError(reply, new TallyError('TALLY_INTERNAL', 'internal error'));
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new TallyError('TALLY_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
}
