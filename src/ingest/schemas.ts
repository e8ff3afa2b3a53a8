import { Type } from '@sinclair/typebox';
import { ErrorSchema } from '../http/schemas.ts';

const FieldErrorSchema = Type.Object({
  index: Type.Integer({ description: 'Position of the item in the request' }),
  field: Type.String(),
  code: Type.String(),
  message: Type.String(),
});

export const IngestResponseSchema = Type.Object({
  accepted: Type.Integer({
    description: 'Valid events in the request, all durable now (duplicates included)',
  }),
  duplicates: Type.Optional(
    Type.Integer({
      description:
        'Of those, how many were already stored (not counted again). Absent when Kafka carries the events: dedup happens later',
    }),
  ),
  dropped: Type.Optional(
    Type.Integer({
      description:
        'Of those, how many were dropped because their user was deleted (not stored, not counted). Absent like duplicates',
    }),
  ),
  event_ids: Type.Array(Type.String(), { description: 'Ids of the accepted events, in request order' }),
  rejected: Type.Optional(
    Type.Array(FieldErrorSchema, { description: 'Problems with the items that were not stored' }),
  ),
});

export function ingestResponseSchemas(status: number) {
  return {
    [status]: { ...IngestResponseSchema, description: 'Accepted: every valid event is durable' },
    400: { ...ErrorSchema, description: 'TALLY_VALIDATION_FAILED or TALLY_INVALID_JSON: no valid event' },
    413: { ...ErrorSchema, description: 'TALLY_BODY_TOO_LARGE or TALLY_TOO_MANY_EVENTS' },
    415: { ...ErrorSchema, description: 'TALLY_UNSUPPORTED_MEDIA_TYPE or TALLY_UNSUPPORTED_ENCODING' },
    503: { ...ErrorSchema, description: 'TALLY_UNAVAILABLE / TALLY_DB_UNAVAILABLE: retry after Retry-After' },
  };
}
