import { LRUCache } from 'lru-cache';
import { DateTime } from 'luxon';

export type Interval = 'minute' | 'hour' | 'day';

export interface Bucket {
  /** Bucket start, ISO-8601 with the zone's offset. */
  label: string;
  /** The part of the bucket inside the query range, epoch ms. */
  from: number;
  to: number;
}

/**
 * Zones already checked: a name's canonical spelling, or false (bounded: a zone matches
 * case-insensitively, so names are not few). TRICKY: checking a name with luxon builds an
 * Intl.DateTimeFormat, whose ~25 KB of ICU memory is outside V8's heap and was never given back:
 * every question checks its zone, and `tally query` grew by 25 KB a request, past 1.5 GB after
 * 60,000 cached answers (docs/benchmarks.md, "The query role's memory: one Intl.DateTimeFormat
 * per request"). And luxon keeps a zone object and an Intl.DateTimeFormat for every name it is
 * given, without bound: it is only ever given the canonical names (canonicalZone).
 */
const checkedZones = new LRUCache<string, string | false>({ max: 1000 });
/** The zones ICU lists, by lower-case name: most names resolve without any Intl object. */
let listedZones: Map<string, string> | undefined;

/** Zone `tz` spelt as ICU spells it (so `europe/paris` is `Europe/Paris`), or undefined if unknown. */
export function canonicalZone(tz: string): string | undefined {
  let zone = checkedZones.get(tz);
  if (zone === undefined) {
    listedZones ??= new Map(Intl.supportedValuesOf('timeZone').map((z) => [z.toLowerCase(), z]));
    // Not listed: an alias (Asia/Calcutta), UTC, an offset; as luxon checks a zone.
    zone = listedZones.get(tz.toLowerCase()) ?? resolvedZone(tz) ?? false;
    checkedZones.set(tz, zone);
  }
  return zone === false ? undefined : zone;
}

function resolvedZone(tz: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

export function isValidZone(tz: string): boolean {
  return canonicalZone(tz) !== undefined;
}

/** The name to give luxon or Intl for zone `tz`, checked before: its canonical spelling. */
export function zoneName(tz: string): string {
  return canonicalZone(tz) ?? tz;
}

/**
 * Splits [from, to) into buckets of `interval` that start at the interval's boundaries in
 * zone `tz` (so a day in Asia/Kolkata starts at 18:30 UTC). The first and last buckets are
 * clipped to the range.
 */
export function zonedBuckets(from: number, to: number, interval: Interval, tz: string): Bucket[] {
  const buckets: Bucket[] = [];
  let start = DateTime.fromMillis(from, { zone: zoneName(tz) }).startOf(interval);
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
