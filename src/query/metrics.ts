import type { EventGroup, VisitGroup } from '../store/analytics-store.ts';
import type { BREAKDOWN_METRICS } from './schemas.ts';

export type BreakdownMetric = (typeof BREAKDOWN_METRICS)[number];

const VISIT_METRICS = new Set<BreakdownMetric>([
  'visits',
  'bounce_rate',
  'visit_duration',
  'views_per_visit',
]);

export const needsVisits = (metrics: readonly BreakdownMetric[]) => metrics.some((m) => VISIT_METRICS.has(m));
export const needsEvents = (metrics: readonly BreakdownMetric[]) =>
  metrics.some((m) => !VISIT_METRICS.has(m));

/** The integer sums a row's metrics are computed from (the store returns them; TS does the division). */
export interface Counts {
  visitors: number;
  events: number;
  page_views: number;
  visits: number;
  bounces: number;
  duration_ms: number;
  visit_page_views: number;
}

export const ZERO: Counts = {
  visitors: 0,
  events: 0,
  page_views: 0,
  visits: 0,
  bounces: 0,
  duration_ms: 0,
  visit_page_views: 0,
};

export function countsOf(e: EventGroup | undefined, v: VisitGroup | undefined): Counts {
  return {
    visitors: e?.visitors ?? 0,
    events: e?.events ?? 0,
    page_views: e?.page_views ?? 0,
    visits: v?.visits ?? 0,
    bounces: v?.bounces ?? 0,
    duration_ms: v?.duration_ms ?? 0,
    visit_page_views: v?.page_views ?? 0,
  };
}

/**
 * A metric's value. Ratios round half up from exact integer quotients (an IEEE division of two
 * integers is correctly rounded, so a true x.5 stays x.5), and are null without visits.
 */
export function metricValue(m: BreakdownMetric, c: Counts): number | null {
  switch (m) {
    case 'visitors':
    case 'events':
    case 'page_views':
    case 'visits':
      return c[m];
    case 'bounce_rate':
      return c.visits === 0 ? null : Math.round((1000 * c.bounces) / c.visits) / 10;
    case 'visit_duration':
      return c.visits === 0 ? null : Math.round(c.duration_ms / (1000 * c.visits));
    case 'views_per_visit':
      return c.visits === 0 ? null : Math.round((100 * c.visit_page_views) / c.visits) / 100;
  }
}

/** `part` as a percent of `whole`, one decimal; null when either is missing or the whole is 0. */
export function percentage(part: number | null, whole: number | null): number | null {
  if (part === null || whole === null || whole === 0) return null;
  return Math.round((1000 * part) / whole) / 10;
}
