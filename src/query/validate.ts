import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import { TallyError, type FieldError } from '../errors/tally-error.ts';

// The options Fastify validates REST requests with (src/http/build-app.ts), so a gRPC request and
// the same question over REST are checked by the same schema in the same way.
const ajv = new Ajv({ removeAdditional: false, coerceTypes: true, useDefaults: true, allErrors: true });
const compiled = new WeakMap<TSchema, ValidateFunction>();

/**
 * Checks `input` against one of the query schemas (src/query/schemas.ts), applying defaults and
 * coercing strings, and returns it typed; throws TALLY_INVALID_QUERY naming each bad field.
 */
export function checkQuery<T extends TSchema>(schema: T, input: Record<string, unknown>): Static<T> {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  const value = { ...input };
  if (validate(value)) return value;
  const details = (validate.errors ?? []).map(fieldError);
  throw new TallyError(
    'TALLY_INVALID_QUERY',
    `invalid request: ${details.map((d) => d.message).join('; ')}`,
    { details },
  );
}

function fieldError(e: ErrorObject): FieldError {
  const params = e.params as Record<string, unknown>;
  if (typeof params.additionalProperty === 'string') {
    const field = params.additionalProperty;
    return { index: 0, field, code: 'TALLY_INVALID_QUERY', message: `${field} is not a known parameter` };
  }
  const field =
    e.instancePath.replace(/^\//, '').replaceAll('/', '.') ||
    (typeof params.missingProperty === 'string' ? params.missingProperty : '(request)');
  const allowed = Array.isArray(params.allowedValues) ? `: one of ${params.allowedValues.join(', ')}` : '';
  return {
    index: 0,
    field,
    code: 'TALLY_INVALID_QUERY',
    message: `${field} ${e.message ?? 'is invalid'}${allowed}`,
  };
}
