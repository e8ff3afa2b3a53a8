import { Type, type TSchema } from '@sinclair/typebox';
import { ErrorSchema } from '../http/schemas.ts';

// A plain `enum` gives one clear validation error ("must be equal to one of the allowed values").
export function StringEnum<const T extends readonly string[]>(
  values: T,
  defaultValue: T[number],
  description: string,
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], default: defaultValue, description });
}

export const Time = Type.String({ maxLength: 64 });

/** `from` and `to`, described for a query whose date-only values start their day in `zone`. */
function rangeFields(zone: string) {
  const forms = `ISO-8601 date-time, epoch milliseconds, or a date (YYYY-MM-DD) meaning that day's start (00:00) in ${zone}`;
  return {
    from: Type.Optional({
      ...Time,
      description: `Range start, inclusive (floored to the minute): ${forms}. Default: to − 24 h`,
    }),
    to: Type.Optional({
      ...Time,
      description: `Range end, exclusive (rounded up to the minute): ${forms}. Default: now`,
    }),
  };
}

/**
 * `filter` (repeatable), `bots` and `consistency`, on every stats question. The filters themselves are parsed
 * by src/query/filters.ts, which names the wrong one as `filter[i]`.
 */
export const filterFields = {
  consistency: Type.Optional(
    StringEnum(
      ['replica', 'strong'],
      'replica',
      'With TALLY_READ_DATABASE_URL: `replica` (default) lets a cache miss read the replica, at most TALLY_READ_MAX_LAG_MS behind (the Tally-Replica-Lag-Ms header says how far); `strong` reads the primary',
    ),
  ),
  filter: Type.Optional(
    Type.Array(
      Type.String({
        description:
          '`<dimension><op><value>[|<value>…]`, op `==` is one of, `!=` is none of, `~=` contains one of (case-insensitive), `!~` contains none of; `\\|` and `\\\\` escape inside values; `(none)` with == or != means no value',
      }),
      {
        description:
          'Repeatable; filters combine with AND. Dimensions: page, hostname, entry_page, exit_page, referrer, channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content, browser, os, device, country, event_type, property:<key>. At most 100 filters, 100 values a filter, 2048 characters a value',
      },
    ),
  ),
  bots: StringEnum(
    ['exclude', 'include', 'only'],
    'exclude',
    'Events and visits of bots: left out (default), counted too, or only them',
  ),
};

export const RangeQuery = Type.Object(rangeFields('UTC'), { additionalProperties: false });

export const SummaryQuery = Type.Object(
  { ...rangeFields('UTC'), ...filterFields },
  { additionalProperties: false },
);

export const LimitQuery = Type.Object(
  {
    ...RangeQuery.properties,
    ...filterFields,
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Most rows to return' }),
  },
  { additionalProperties: false },
);

export const TimeseriesQuery = Type.Object(
  {
    ...rangeFields('`tz`'),
    ...filterFields,
    metric: StringEnum(
      ['events', 'page_views', 'unique_users', 'visitors', 'visits'],
      'events',
      'What to count per bucket (unique_users and visitors are exact distinct users; visits count in the bucket where they start)',
    ),
    interval: StringEnum(['minute', 'hour', 'day'], 'hour', 'Bucket size, aligned to the boundaries of `tz`'),
    tz: Type.String({ default: 'UTC', maxLength: 64, description: 'IANA time zone for bucket boundaries' }),
    event_type: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'Only events of this type (metric=events)' }),
    ),
    page_url: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: 'Only events on this exact page (metrics events, page_views)',
      }),
    ),
  },
  { additionalProperties: false },
);

export const UserEventsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Most events to return' }),
    consistency: filterFields.consistency,
  },
  { additionalProperties: false },
);

export const UserParams = Type.Object({
  user_id: Type.String({ minLength: 1, maxLength: 256, description: 'The user, as sent in events' }),
});

function Nullable<T extends TSchema>(schema: T) {
  return Type.Union([schema, Type.Null()], { description: schema.description });
}

const RangeEcho = { from: Type.String({ format: 'date-time' }), to: Type.String({ format: 'date-time' }) };

export const SummaryResponse = Type.Object(
  {
    ...RangeEcho,
    events: Type.Integer(),
    page_views: Type.Integer(),
    unique_users: Type.Integer({ description: 'Exact distinct users in the range' }),
    visitors: Type.Integer({ description: 'Exact distinct users of the selected events' }),
    visits: Nullable(
      Type.Integer({
        description:
          'Visits started in the range holding a selected event (null where raw events are not kept)',
      }),
    ),
    bounce_rate: Nullable(Type.Number({ description: 'Percent of those visits that bounced, one decimal' })),
    visit_duration: Nullable(Type.Integer({ description: 'Mean visit duration, seconds' })),
    visit_duration_median: Nullable(Type.Integer({ description: 'Median visit duration, seconds' })),
    views_per_visit: Nullable(Type.Number({ description: 'Page views per visit, two decimals' })),
  },
  { description: 'Totals over the effective (minute-aligned) range' },
);

export const TimeseriesResponse = Type.Object(
  {
    metric: Type.String(),
    interval: Type.String(),
    tz: Type.String(),
    ...RangeEcho,
    points: Type.Array(
      Type.Object({
        t: Type.String({ description: 'Bucket start with zone offset' }),
        value: Type.Integer(),
      }),
    ),
  },
  {
    description:
      'One point per bucket, zero-filled; the first and last buckets count only the part inside the range',
  },
);

export const TopPagesResponse = Type.Object(
  {
    ...RangeEcho,
    pages: Type.Array(Type.Object({ page_url: Type.String(), views: Type.Integer() })),
  },
  { description: 'Pages by page_view events, most viewed first' },
);

export const EventTypesResponse = Type.Object(
  {
    ...RangeEcho,
    types: Type.Array(Type.Object({ type: Type.String(), count: Type.Integer() })),
  },
  { description: 'Event counts by type, largest first' },
);

export const UserEventsResponse = Type.Object(
  {
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
  },
  { description: "The user's stored raw events, newest first" },
);

const described = (description: string) => ({ ...ErrorSchema, description });

/** The errors every query route can answer, each described for the OpenAPI document. */
export const errorResponses = {
  400: described(
    'TALLY_INVALID_QUERY or TALLY_UNSUPPORTED_FILTER: a parameter is missing, malformed, unknown or not applicable; `errors[].field` names it',
  ),
  401: described('TALLY_UNAUTHORIZED: API keys are configured and the request has none, or an unknown one'),
  403: described('TALLY_FORBIDDEN: the key may not read this project'),
  503: described('TALLY_DB_UNAVAILABLE: PostgreSQL cannot be reached; retry after Retry-After seconds'),
};

// Seed 003: `GET /analytics/events` with `user_id` and `page_url` (query string or JSON body).
export const EventCountQuery = Type.Object(
  {
    user_id: Type.String({ minLength: 1, maxLength: 256, description: 'The user' }),
    page_url: Type.String({ minLength: 1, maxLength: 2048, description: 'The page, exactly as sent' }),
    consistency: filterFields.consistency,
  },
  { additionalProperties: false },
);

export const EventCountResponse = Type.Object(
  {
    user_id: Type.String(),
    page_url: Type.String(),
    count: Type.Integer({ description: "Number of the user's events on that page (all time)" }),
  },
  { description: "Seed 003's answer" },
);

/** `user_id` (a path parameter in REST) and `limit` together: the gRPC request. */
export const UserEventsRequest = Type.Object(
  { ...UserParams.properties, ...UserEventsQuery.properties },
  { additionalProperties: false },
);

export const BREAKDOWN_METRICS = [
  'visitors',
  'visits',
  'page_views',
  'events',
  'bounce_rate',
  'visit_duration',
  'views_per_visit',
] as const;

export const BreakdownQuery = Type.Object(
  {
    ...rangeFields('UTC'),
    ...filterFields,
    dimension: Type.String({
      minLength: 1,
      maxLength: 160,
      description:
        'What to break down by: page, hostname, entry_page, exit_page, referrer, channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content, browser, os, device, country, event_type, or property:<key>',
    }),
    metrics: Type.String({
      default: 'visitors',
      maxLength: 200,
      description: `Comma-separated, in the order wanted: ${BREAKDOWN_METRICS.join(', ')}`,
    }),
    sort: Type.Optional(
      Type.String({
        maxLength: 40,
        description:
          '`<metric>:asc` or `<metric>:desc`; default: the first metric, descending. Ties: value ascending',
      }),
    ),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Rows per page' }),
    page: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'Page of rows, from 1' }),
  },
  { additionalProperties: false },
);

const metricFields = {
  visitors: Type.Optional(Type.Integer({ description: 'Distinct users of the selected events' })),
  visits: Type.Optional(
    Type.Integer({ description: 'Visits started in the range holding a selected event' }),
  ),
  page_views: Type.Optional(Type.Integer({ description: 'Selected page_view events' })),
  events: Type.Optional(Type.Integer({ description: 'Selected events' })),
  bounce_rate: Type.Optional(Nullable(Type.Number({ description: 'Percent of the visits that bounced' }))),
  visit_duration: Type.Optional(Nullable(Type.Integer({ description: 'Mean visit duration, seconds' }))),
  views_per_visit: Type.Optional(Nullable(Type.Number({ description: 'Page views per visit' }))),
};

export const BreakdownResponse = Type.Object(
  {
    dimension: Type.String(),
    ...RangeEcho,
    metrics: Type.Array(Type.String()),
    results: Type.Array(
      Type.Object({
        value: Type.String({ description: 'The dimension value; "(none)" when the events have none' }),
        ...metricFields,
        percentage: Nullable(
          Type.Number({
            description: "The row's visitors (else its first metric) as a percent of the total",
          }),
        ),
      }),
    ),
    total: Type.Object(metricFields, {
      description: 'The metrics over everything selected (not the sum of rows)',
    }),
    page: Type.Integer(),
    limit: Type.Integer(),
    has_more: Type.Boolean(),
  },
  { description: 'One row per dimension value, sorted, one page of them' },
);
