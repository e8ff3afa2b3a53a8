import { LRUCache } from 'lru-cache';
import { DateTime, IANAZone } from 'luxon';

export type Interval = 'minute' | 'hour' | 'day';

export interface Bucket {
  /** Bucket start, ISO-8601 with the zone's offset. */
  label: string;
  /** The part of the bucket inside the query range, epoch ms. */
  from: number;
  to: number;
}

/**
 * Zones already checked, valid or not (bounded: a zone matches case-insensitively, so names are
 * not few). TRICKY: luxon checks a zone by building an Intl.DateTimeFormat, whose ~25 KB of ICU
 * memory is outside V8's heap and was never given back: every question checks its zone, and
 * `tally query` grew by 25 KB a request, past 1.5 GB after 60,000 cached answers
 * (docs/benchmarks.md, "The query role's memory: one Intl.DateTimeFormat per request").
 */
const checkedZones = new LRUCache<string, boolean>({ max: 1000 });

export function isValidZone(tz: string): boolean {
  let valid = checkedZones.get(tz);
  if (valid === undefined) checkedZones.set(tz, (valid = IANAZone.isValidZone(tz)));
  return valid;
}

/**
 * Splits [from, to) into buckets of `interval` that start at the interval's boundaries in
 * zone `tz` (so a day in Asia/Kolkata starts at 18:30 UTC). The first and last buckets are
 * clipped to the range.
 */
export function zonedBuckets(from: number, to: number, interval: Interval, tz: string): Bucket[] {
  const buckets: Bucket[] = [];
  let start = DateTime.fromMillis(from, { zone: tz }).startOf(interval);
  while (start.toMillis() < to) {
    const next = start.plus({ [interval]: 1 });
    buckets.push({
      label: start.toISO({ suppressMilliseconds: true })!,
      from: Math.max(start.toMillis(), from),
      to: Math.min(next.toMillis(), to),
    });
    start = next;
  }
  return buckets;
}

/** Number of buckets zonedBuckets would return, without building them (for limits). */
export function estimateBuckets(from: number, to: number, interval: Interval): number {
  const ms = interval === 'minute' ? 60_000 : interval === 'hour' ? 3_600_000 : 86_400_000;
  return Math.ceil((to - from) / ms) + 1;
}
