import { isDateOnly, parseDayStart, parseTimestamp } from '../event/timestamp.ts';
import { invalid } from '../query/stats-service.ts';

/**
 * The audit's `since` (REST `since`, `tally users audit --since`): an ISO-8601 date-time, epoch
 * milliseconds, or a date (its 00:00 UTC), as the query ranges read them. Anything else is a
 * TALLY_INVALID_QUERY naming `since`.
 */
export function parseSince(value: string): Date {
  const t = isDateOnly(value)
    ? parseDayStart(value, 'UTC')
    : /^\d+$/.test(value)
      ? parseTimestamp(Number(value))
      : parseTimestamp(value);
  if (t === undefined) {
    throw invalid(
      'since',
      `since must be a date (YYYY-MM-DD), an ISO-8601 date-time or epoch milliseconds (got ${value})`,
    );
  }
  return new Date(t);
}
