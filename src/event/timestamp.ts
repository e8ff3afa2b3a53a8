import { DateTime } from 'luxon';

// ISO-8601 date-time with optional seconds/fraction and optional zone (no zone = UTC).
const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

const MIN_MS = 0;
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Reads an event timestamp: an ISO-8601 date-time string or epoch milliseconds.
 * Returns epoch ms, or undefined when the value is not a valid time.
 */
export function parseTimestamp(value: unknown): number | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < MIN_MS || value > MAX_MS) return undefined;
    return Math.trunc(value);
  }
  if (typeof value !== 'string' || value.length > 64) return undefined;
  const canonical = parseCanonicalIso(value);
  if (canonical !== undefined) return canonical;
  const m = ISO_DATE_TIME.exec(value);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m as unknown as string[];
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = s === undefined ? 0 : Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return undefined;
  const ms = frac === undefined ? 0 : Math.trunc(Number(`0.${frac}`) * 1000);
  let t = Date.UTC(Number(y), month - 1, day, hour, minute, Math.min(second, 59), ms);
  // Date.UTC rolls 2024-02-31 over into March: reject instead of guessing.
  if (new Date(t).getUTCDate() !== day) return undefined;
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offH = Number(digits.slice(0, 2));
    const offM = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (offH > 23 || offM > 59) return undefined;
    t -= sign * (offH * 60 + offM) * 60_000;
  }
  return t >= MIN_MS && t <= MAX_MS ? t : undefined;
}

const DIGIT_0 = 48;
/** Days of each month in a common year; February gains one in leap years. */
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * The instant of a valid date-time written exactly as `Date.prototype.toISOString` writes it
 * (`YYYY-MM-DDTHH:MM:SS.sssZ`, the form `tally ingest` puts in Kafka), read without a regular
 * expression or a Date; undefined for anything else, valid or not (second 60 and impossible
 * dates included), which the general reading then decides. For every string it accepts, the
 * result equals parseTimestamp's general reading and Date.parse (test/event/timestamp.test.ts).
 *
 * Why: the processor reads two such times per event (the event's and its receive time), and the
 * regular expression, its match array and the day check's Date were ~5 % of a worker's CPU
 * (scenario 3's profile, docs/benchmarks.md).
 */
export function parseCanonicalIso(value: string): number | undefined {
  if (
    value.length !== 24 ||
    value.charCodeAt(4) !== 45 /* - */ ||
    value.charCodeAt(7) !== 45 ||
    value.charCodeAt(10) !== 84 /* T */ ||
    value.charCodeAt(13) !== 58 /* : */ ||
    value.charCodeAt(16) !== 58 ||
    value.charCodeAt(19) !== 46 /* . */ ||
    value.charCodeAt(23) !== 90 /* Z */
  )
    return undefined;
  const year = digits(value, 0, 4);
  const month = digits(value, 5, 2);
  const day = digits(value, 8, 2);
  const hour = digits(value, 11, 2);
  const minute = digits(value, 14, 2);
  const second = digits(value, 17, 2);
  const ms = digits(value, 20, 3);
  // A non-digit makes its field negative, which every bound below refuses.
  if (year < 0 || ms < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return undefined;
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > MONTH_DAYS[month - 1] + (month === 2 && leap ? 1 : 0)) return undefined;
  // Date.UTC reads years 0–99 as 1900–1999: leave those to the general reading, as the instants
  // before 1970 that parseTimestamp refuses.
  if (year < 100) return undefined;
  const t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  return t >= MIN_MS ? t : undefined;
}

/** The decimal number of `length` digits at `start`, or -1 when one is not a digit. */
function digits(value: string, start: number, length: number): number {
  let n = 0;
  for (let i = start; i < start + length; i++) {
    const d = value.charCodeAt(i) - DIGIT_0;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether `value` is written as a date only (`YYYY-MM-DD`), valid or not. */
export function isDateOnly(value: string): boolean {
  return ISO_DATE.test(value);
}

/**
 * Reads a date-only `YYYY-MM-DD` as the first instant of that day in IANA zone `zone`
 * (epoch ms), or undefined when it is not a calendar date (2026-02-30, 2026-13-01) or the zone
 * is unknown. Where a zone's clocks jump over midnight (DST at 00:00), the day starts at the
 * first time that exists, 01:00.
 */
export function parseDayStart(value: string, zone: string): number | undefined {
  const m = ISO_DATE.exec(value);
  if (m === null) return undefined;
  const [year, month, day] = m.slice(1).map(Number);
  // Luxon refuses a day the month does not have (it does not roll 02-30 into March).
  const start = DateTime.fromObject({ year, month, day }, { zone });
  if (!start.isValid) return undefined;
  const t = start.toMillis();
  return t >= MIN_MS && t <= MAX_MS ? t : undefined;
}
