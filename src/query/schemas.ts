import { Type } from '@sinclair/typebox';
import { ErrorSchema } from '../http/schemas.ts';

// A plain `enum` gives one clear validation error ("must be equal to one of the allowed values").
function StringEnum<const T extends readonly string[]>(values: T, defaultValue: T[number]) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], default: defaultValue });
}

const Time = Type.String({ description: 'ISO-8601 date-time or epoch milliseconds', maxLength: 64 });

export const RangeQuery = Type.Object(
  {
    from: Type.Optional({
      ...Time,
      description: 'Range start, inclusive (floored to the minute). Default: to − 24 h',
    }),
    to: Type.Optional({
      ...Time,
      description: 'Range end, exclusive (rounded up to the minute). Default: now',
    }),
  },
  { additionalProperties: false },
);

export const LimitQuery = Type.Object(
  {
    ...RangeQuery.properties,
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 10 }),
  },
  { additionalProperties: false },
);

export const TimeseriesQuery = Type.Object(
  {
    ...RangeQuery.properties,
    metric: StringEnum(['events', 'page_views', 'unique_users'], 'events'),
    interval: StringEnum(['minute', 'hour', 'day'], 'hour'),
    tz: Type.String({ default: 'UTC', maxLength: 64, description: 'IANA time zone for bucket boundaries' }),
    event_type: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    page_url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
  },
  { additionalProperties: false },
);

export const UserEventsQuery = Type.Object(
  { limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) },
  { additionalProperties: false },
);

export const UserParams = Type.Object({ user_id: Type.String({ minLength: 1, maxLength: 256 }) });

const RangeEcho = { from: Type.String({ format: 'date-time' }), to: Type.String({ format: 'date-time' }) };

export const SummaryResponse = Type.Object({
  ...RangeEcho,
  events: Type.Integer(),
  page_views: Type.Integer(),
  unique_users: Type.Integer({ description: 'Exact distinct users in the range' }),
});

export const TimeseriesResponse = Type.Object({
  metric: Type.String(),
  interval: Type.String(),
  tz: Type.String(),
  ...RangeEcho,
  points: Type.Array(
    Type.Object({ t: Type.String({ description: 'Bucket start with zone offset' }), value: Type.Integer() }),
  ),
});

export const TopPagesResponse = Type.Object({
  ...RangeEcho,
  pages: Type.Array(Type.Object({ page_url: Type.String(), views: Type.Integer() })),
});

export const EventTypesResponse = Type.Object({
  ...RangeEcho,
  types: Type.Array(Type.Object({ type: Type.String(), count: Type.Integer() })),
});

export const UserEventsResponse = Type.Object({
  user_id: Type.String(),
  events: Type.Array(
    Type.Object({
      event_id: Type.String(),
      type: Type.String(),
      user_id: Type.String(),
      timestamp: Type.String(),
      received_at: Type.String(),
      page_url: Type.Union([Type.String(), Type.Null()]),
      referrer: Type.Union([Type.String(), Type.Null()]),
      session_id: Type.Union([Type.String(), Type.Null()]),
      service: Type.Union([Type.String(), Type.Null()]),
      properties: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
    }),
  ),
});

export const errorResponses = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 503: ErrorSchema };
