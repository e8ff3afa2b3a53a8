import { once } from 'node:events';
import { MessageChannel } from 'node:worker_threads';
import fc from 'fast-check';
import { ColumnarBuilder } from '../../src/query/columnar/builder.ts';
import { adoptSummaryDigests, Layers, summaryDigestsOf } from '../../src/query/columnar/layers.ts';
import type { ColumnarModel } from '../../src/query/columnar/model.ts';
import { packModel, transferables, unpackModel } from '../../src/query/columnar/transfer.ts';
import { OPS, parseDimension, type Filter } from '../../src/query/filters.ts';
import type { Visit, WebEvent } from './web-fixtures.ts';
import type { Bots, RefFilter } from './web-reference.ts';

/**
 * Random events, filters and questions for the columnar read model's property tests
 * (columnar.test.ts, columnar-layers.test.ts), and the model of a set of rows.
 */

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const BASE = Date.UTC(2026, 0, 5);
export const TIMEOUT = 30 * MINUTE;

export const VALUES = {
  type: ['page_view', 'page_view', 'click', 'signup'],
  path: ['/', '/blog/a', '/Blog/B', '/pricing', "/50%_x'", null],
  hostname: ['example.com', 'shop.example.com', null],
  referrer_host: [null, 'google.com', 'news.example.org'],
  channel: ['Direct', 'Email', 'Organic Search', null],
  utm_source: [null, 'newsletter', 'Twitter'],
  utm_campaign: [null, 'spring', 'Spring-Sale'],
  browser: ['Chrome', 'Firefox', null],
  os: ['Windows', 'iOS', 'Android'],
  device: ['desktop', 'mobile', 'tablet', null],
  country: ['US', 'DE', 'FR', null],
  plan: [null, 'pro', 'free'],
  session: [null, null, null, null, 's1', 's2'],
} as const;

/** The values each generated column draws from (the type and os columns are never NULL). */
export type Values = {
  readonly [K in keyof typeof VALUES]: null extends (typeof VALUES)[K][number]
    ? readonly (string | null)[]
    : readonly string[];
};

export const oneOf = <T>(list: readonly T[]) => fc.constantFrom(...list);

/** Events of users u0…u`users` (and two bots) over hours 0…`hours` after BASE. */
export function eventArbOf(values: Values, { users, hours }: { users: number; hours: number }) {
  return fc.record({
    user: fc.nat(users),
    bot: fc.nat(7).map((n) => n === 0),
    // Clustered times, so that gaps fall on both sides of the 30-min timeout.
    hour: fc.nat(hours),
    offset: fc.nat(55 * MINUTE),
    type: oneOf(values.type),
    path: oneOf(values.path),
    hostname: oneOf(values.hostname),
    referrer_host: oneOf(values.referrer_host),
    channel: oneOf(values.channel),
    utm_source: oneOf(values.utm_source),
    utm_campaign: oneOf(values.utm_campaign),
    browser: oneOf(values.browser),
    os: oneOf(values.os),
    device: oneOf(values.device),
    country: oneOf(values.country),
    plan: oneOf(values.plan),
    session: oneOf(values.session),
  });
}

export const eventArb = eventArbOf(VALUES, { users: 5, hours: 5 });

export const DIMENSIONS = [
  'page',
  'hostname',
  'event_type',
  'browser',
  'os',
  'device',
  'country',
  'entry_page',
  'exit_page',
  'referrer',
  'channel',
  'utm_source',
  'utm_medium',
  'utm_campaign',
  'utm_term',
  'property:plan',
  'property:absent',
];

const present = (list: readonly (string | null)[]) => list.filter((v): v is string => v !== null);

/** The values of `values`, and some that are none or pieces of them, for filters to test. */
export function filterValuesOf(values: Values): string[] {
  return [
    ...new Set([
      ...present(Object.values(values).flat()),
      'email',
      '(none)',
      'BLOG',
      'o',
      '%',
      'nothing-has-this',
    ]),
  ];
}

export const FILTER_VALUES = filterValuesOf(VALUES);

export function filterArbOf(dimensions: readonly string[], filterValues: readonly string[]) {
  return fc.record({
    dim: oneOf(dimensions),
    op: oneOf(['==', '!=', '~=', '!~'] as const),
    values: fc.array(
      fc.oneof(
        oneOf(filterValues),
        // A piece of a value, in either case, for contains.
        fc.tuple(oneOf(filterValues), fc.nat(6), fc.nat(3), fc.boolean()).map(([v, i, n, up]) => {
          const piece = v.slice(i % v.length, (i % v.length) + 1 + n);
          return up ? piece.toUpperCase() : piece;
        }),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  }) satisfies fc.Arbitrary<RefFilter>;
}

export const filterArb: fc.Arbitrary<RefFilter> = filterArbOf(DIMENSIONS, FILTER_VALUES);

export function questionArbOf(filters: fc.Arbitrary<RefFilter[]>, dimensions: readonly string[]) {
  return fc.record({
    // Ragged: any millisecond, from before the first event to after the last.
    from: fc.integer({ min: -HOUR, max: 4 * HOUR }),
    span: fc.integer({ min: 0, max: 7 * HOUR }),
    // Often a bound on an event's own time (or 1 ms beside it): [from, to) must be exact there.
    snapFrom: fc.option(fc.tuple(fc.nat(), fc.integer({ min: -1, max: 1 })), { freq: 2 }),
    snapTo: fc.option(fc.tuple(fc.nat(), fc.integer({ min: -1, max: 1 })), { freq: 2 }),
    filters,
    bots: oneOf<Bots>(['exclude', 'exclude', 'include', 'only']),
    dimension: oneOf(dimensions),
  });
}

export const questionArb = questionArbOf(fc.array(filterArb, { maxLength: 3 }), DIMENSIONS);

/**
 * Stored events of a run: bots are mostly their own users (a visitor's user agent decides), and
 * some are events of a human user (one user agent of several was a bot's): users of mixed flags.
 */
export type RawEvent = ReturnType<typeof eventArbOf> extends fc.Arbitrary<infer T> ? T : never;

export function eventsOf(raws: RawEvent[]): WebEvent[] {
  return raws.map((r, i) => ({
    event_id: `e${String(i).padStart(3, '0')}`,
    user_id: r.bot && r.user % 3 !== 0 ? `bot${r.user % 2}` : `u${r.user}`,
    type: r.type,
    ts: BASE + r.hour * HOUR + r.offset,
    session_id: r.session,
    properties: r.plan === null ? null : { plan: r.plan },
    path: r.path,
    hostname: r.path === null ? null : r.hostname,
    referrer_host: r.referrer_host,
    channel: r.channel,
    utm_source: r.utm_source,
    utm_medium: r.utm_source === null ? null : 'email',
    utm_campaign: r.utm_campaign,
    utm_term: null,
    utm_content: null,
    browser: r.browser,
    os: r.os,
    device: r.device,
    country: r.country,
    is_bot: r.bot,
  }));
}

/** The model of these rows, each visit's own dimensions those of its first event. */
export function modelOf(events: readonly WebEvent[], visits: readonly Visit[]): ColumnarModel {
  const b = new ColumnarBuilder();
  for (const e of events) b.addEvent(e);
  for (const v of visits) {
    const f = v.first;
    b.addVisit({
      ...v,
      referrer_host: f.referrer_host,
      channel: f.channel,
      utm_source: f.utm_source,
      utm_medium: f.utm_medium,
      utm_campaign: f.utm_campaign,
      utm_term: f.utm_term,
      utm_content: f.utm_content,
    });
  }
  return b.build();
}

export const toFilter = (f: RefFilter): Filter => ({
  dimension: parseDimension(f.dim)!,
  op: OPS[f.op],
  values: f.values,
});

/** `value` as another thread receives it: posted through a MessageChannel, its buffers transferred. */
export async function posted<T>(value: T): Promise<T> {
  const { port1, port2 } = new MessageChannel();
  try {
    const received = once(port2, 'message');
    port1.postMessage(value, transferables(value));
    const [got] = (await received) as [T];
    return got;
  } finally {
    port1.close();
    port2.close();
  }
}

/**
 * Layers over `m` as a load makes them (src/query/columnar/load.ts): the model and its summary
 * digests built on one thread, posted, unpacked and adopted on another. `m` is spent (its digests'
 * buffers are transferred away).
 */
export async function postedLayers(m: ColumnarModel): Promise<Layers> {
  const got = await posted({ model: packModel(m), digests: summaryDigestsOf(m) });
  const model = await unpackModel(got.model);
  adoptSummaryDigests(model, got.digests);
  return new Layers(model);
}
