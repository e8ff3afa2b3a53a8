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
