import { Type, type TSchema } from '@sinclair/typebox';
import { ErrorSchema } from '../../http/schemas.ts';
import { errorResponses, filterFields } from '../schemas.ts';

/**
 * Funnels, retention and paths (issue 21): requests and answers, for REST, gRPC (the same checks,
 * src/query/validate.ts) and OpenAPI. Semantics: src/query/QUERY_PLANS.md, "Product analytics".
 */

function StringEnum<const T extends readonly string[]>(
  values: T,
  defaultValue: T[number],
  description: string,
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], default: defaultValue, description });
}

const Time = Type.String({ maxLength: 64 });
const forms =
  'ISO-8601 date-time, epoch milliseconds, or a date (YYYY-MM-DD) meaning that day’s start (00:00) in `tz`';
const range = {
  from: Type.Optional({
    ...Time,
    description: `Range start, inclusive (floored to the minute): ${forms}. Default: to − 7 days`,
  }),
  to: Type.Optional({
    ...Time,
    description: `Range end, exclusive (rounded up to the minute): ${forms}. Default: now`,
  }),
  tz: Type.String({
    default: 'UTC',
    maxLength: 64,
    description: 'IANA time zone of date-only bounds (and of retention periods)',
  }),
};

const EventType = Type.String({ minLength: 1, maxLength: 128 });

export const FunnelStep = Type.Object(
  {
    event_type: Type.Optional({ ...EventType, description: 'Events of this type' }),
    page: Type.Optional(
      Type.String({ minLength: 1, maxLength: 2048, description: 'Events on this page (path)' }),
    ),
    filter: Type.Optional(
      Type.Array(Type.String(), {
        maxItems: 20,
        description:
          'More conditions on the step’s event, in the syntax of `filter` (event, visit and property dimensions)',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'An event that does the step: at least one of event_type, page, filter',
  },
);

export const FunnelBody = Type.Object(
  {
    ...range,
    ...filterFields,
    steps: Type.Array(FunnelStep, { minItems: 2, maxItems: 10, description: '2 to 10 ordered steps' }),
    window: Type.String({
      default: '1d',
      maxLength: 16,
      description:
        'Conversion window: every step within this time of the first, inclusive: <n>m, <n>h, <n>d or <n>w, from 1m to 90d',
    }),
    count_by: StringEnum(
      ['user', 'visit'],
      'user',
      'What converts: a unique user, or a visit (all steps in one visit)',
    ),
    order: StringEnum(
      ['strict', 'any'],
      'strict',
      'strict: each step after the previous one (other events may come between); any: the steps in any order',
    ),
    breakdown: Type.Optional(
      Type.String({
        maxLength: 300,
        description: 'A dimension (as in `filter`): its value on the first step’s event',
      }),
    ),
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Most breakdown groups' }),
  },
  { additionalProperties: false },
);

export const RETENTION_MAX_PERIODS = { day: 90, week: 52, month: 24 } as const;

export const RetentionQuery = Type.Object(
  {
    ...range,
    ...filterFields,
    period: StringEnum(
      ['day', 'week', 'month'],
      'week',
      'Cohort and return period, in `tz` (weeks start on Monday)',
    ),
    periods: Type.Integer({
      minimum: 1,
      maximum: 90,
      default: 8,
      description: 'Columns: periods 0 … n−1 after the cohort’s own (at most 90 days, 52 weeks or 24 months)',
    }),
    cohort_event: Type.Optional({
      ...EventType,
      description: 'Cohorts by the first time a user did this event type; default: first seen (any event)',
    }),
    return_event: Type.Optional({
      ...EventType,
      description: 'What counts as coming back; default: any event',
    }),
  },
  { additionalProperties: false },
);

export const PathsQuery = Type.Object(
  {
    ...range,
    ...filterFields,
    by: StringEnum(['page', 'event_type'], 'page', 'The steps of a path: pages, or event types'),
    anchor: Type.String({
      minLength: 1,
      maxLength: 2048,
      description: 'The page (or event type) paths start from',
    }),
    direction: StringEnum(['next', 'previous'], 'next', 'What came after the anchor, or before it'),
    depth: Type.Integer({ minimum: 1, maximum: 3, default: 3, description: 'Steps away from the anchor' }),
    limit: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Most paths per depth' }),
  },
  { additionalProperties: false },
);

const Iso = Type.String({ format: 'date-time' });
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Covers = Type.Object(
  { from: Iso, to: Iso },
  {
    description:
      'The part of the range the raw events cover (TALLY_RAW_RETENTION_DAYS drops older ones): the answer is exact there and knows nothing before',
  },
);

const StepRow = Type.Object({
  step: Type.Integer({ description: '1-based' }),
  label: Type.String(),
  count: Type.Integer({
    description: 'Users (or visits) that did this step and every earlier one, within the window',
  }),
  conversion_from_first: Nullable(Type.Number({ description: '% of the first step' })),
  conversion_from_previous: Nullable(Type.Number({ description: '% of the previous step' })),
  median_seconds_from_previous: Nullable(Type.Number({ description: 'Median time from the previous step' })),
});

export const FunnelResponse = Type.Object({
  from: Iso,
  to: Iso,
  covers: Covers,
  count_by: Type.String(),
  order: Type.String(),
  window_seconds: Type.Integer(),
  steps: Type.Array(StepRow),
  breakdown: Type.Optional(Type.String()),
  groups: Type.Optional(
    Type.Array(
      Type.Object({ value: Type.String({ description: '"(none)": no value' }), steps: Type.Array(StepRow) }),
    ),
  ),
  has_more: Type.Optional(Type.Boolean({ description: 'More breakdown groups than `limit`' })),
});

export const RetentionResponse = Type.Object({
  from: Iso,
  to: Iso,
  covers: Covers,
  first_seen_since: Type.Union([Iso, Type.Null()], {
    description:
      'First seen is judged over the raw events from here on (TALLY_RAW_RETENTION_DAYS); null: every event ever stored',
  }),
  tz: Type.String(),
  period: Type.String(),
  periods: Type.Integer(),
  cohorts: Type.Array(
    Type.Object({
      start: Iso,
      date: Type.String({ description: 'The period’s first day in `tz`, YYYY-MM-DD' }),
      users: Type.Integer(),
      returned: Type.Array(Nullable(Type.Integer()), {
        description: 'Users back in period k; null: not over yet',
      }),
      retention: Type.Array(Nullable(Type.Number()), { description: '% of the cohort back in period k' }),
    }),
  ),
});

export const PathsResponse = Type.Object({
  from: Iso,
  to: Iso,
  covers: Covers,
  by: Type.String(),
  anchor: Type.String(),
  direction: Type.String(),
  anchors: Type.Integer({ description: 'Times the anchor occurred in a visit' }),
  levels: Type.Array(
    Type.Object({
      depth: Type.Integer(),
      items: Type.Array(
        Type.Object({
          path: Type.Array(Type.Union([Type.String(), Type.Null()]), {
            description: 'Nearest first; null: the visit ended (began) there',
          }),
          count: Type.Integer(),
          percentage: Nullable(Type.Number()),
        }),
      ),
      other: Type.Integer({ description: 'Occurrences on paths not listed' }),
    }),
  ),
});

export const productErrorResponses = {
  ...errorResponses,
  400: {
    ...ErrorSchema,
    description:
      'TALLY_INVALID_QUERY (a step, window, dimension or parameter is wrong; `errors[].field` names it, e.g. steps[2].filter[0]) or TALLY_RAW_UNAVAILABLE (no raw events over the range)',
  },
  422: {
    ...ErrorSchema,
    description:
      'TALLY_QUERY_TOO_EXPENSIVE: without the read model, the question would read more raw events than TALLY_PRODUCT_MAX_SCAN_EVENTS; refused before it runs',
  },
};
