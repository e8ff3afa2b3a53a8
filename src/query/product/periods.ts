import { IANAZone } from 'luxon';
import { zoneName } from '../time-buckets.ts';

/**
 * Calendar periods in a time zone, for retention's cohorts (issue 21): a day runs from local
 * midnight to local midnight (23 or 25 hours across a DST change), a week from Monday 00:00, a
 * month from the 1st 00:00. A period starts at the first instant whose local date is its first
 * date: where midnight is skipped (America/Sao_Paulo's DST began at 00:00 until 2019) that is the
 * end of the gap, where it happens twice, the first of the two.
 */

export type RetentionPeriod = 'day' | 'week' | 'month';

const DAY = 86_400_000;

/** The epoch ms at which the local period of `period` in `tz` holding `t` starts. */
export function periodStart(t: number, period: RetentionPeriod, tz: string): number {
  const zone = IANAZone.create(zoneName(tz));
  return firstInstantOf(firstDate(localDate(zone, t), period), (at) => offsetAt(zone, at));
}

/** The start of the period after the one starting at `start` (a periodStart answer). */
export function nextPeriod(start: number, period: RetentionPeriod, tz: string): number {
  const zone = IANAZone.create(zoneName(tz));
  const first = firstDate(localDate(zone, start), period);
  const next =
    period === 'day'
      ? first + DAY
      : period === 'week'
        ? first + 7 * DAY
        : Date.UTC(new Date(first).getUTCFullYear(), new Date(first).getUTCMonth() + 1, 1);
  return firstInstantOf(next, (at) => offsetAt(zone, at));
}

/**
 * The starts of the periods that intersect [from, to), and one more: the start of the period
 * after the last (at or after `to`). Empty when the range is.
 */
export function periodStarts(from: number, to: number, period: RetentionPeriod, tz: string): number[] {
  if (!(from < to)) return [];
  if (!Number.isFinite(from) || !Number.isFinite(to)) throw new RangeError('periods need a finite range');
  const starts = [periodStart(from, period, tz)];
  while (starts[starts.length - 1] < to) starts.push(nextPeriod(starts[starts.length - 1], period, tz));
  return starts;
}

/** The zone's offset from UTC at `t`, in ms. */
function offsetAt(zone: IANAZone, t: number): number {
  return zone.offset(t) * 60_000;
}

/** A local calendar date, written as the epoch ms of that date's midnight in UTC. */
function localDate(zone: IANAZone, t: number): number {
  return Math.floor((t + offsetAt(zone, t)) / DAY) * DAY;
}

/** The first date of the period holding `date` (ISO weeks: Monday first). */
function firstDate(date: number, period: RetentionPeriod): number {
  if (period === 'day') return date;
  const d = new Date(date);
  if (period === 'week') return date - ((d.getUTCDay() + 6) % 7) * DAY;
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/**
 * The first instant whose local date is `date` or later, for a zone of offsets (ms) `offset`.
 * Local midnight is `date` minus the offset in force then, which is the offset before or after
 * any change near it (zones change at most once within a day of midnight): one of the two fits,
 * both (midnight happens twice: the first), or none (midnight is skipped: the change itself,
 * found by bisection). Exported for tests, which can make up zones no tzdata has.
 */
export function firstInstantOf(date: number, offset: (t: number) => number): number {
  const before = offset(date - DAY);
  const after = offset(date + DAY);
  const early = date - Math.max(before, after);
  const late = date - Math.min(before, after);
  if (offset(early) === Math.max(before, after)) return early;
  if (offset(late) === Math.min(before, after)) return late;
  // TRICKY: in the gap the offset at `late` is already `after` and at `early` still `before`.
  // Since 1971 every gap began at midnight (the change is at `late`), but nothing promises it.
  let lo = early;
  let hi = late;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offset(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}
