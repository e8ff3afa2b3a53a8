import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TallyError } from '../../src/errors/tally-error.ts';
import { resolveRange } from '../../src/query/stats-service.ts';

const HOUR = 3_600_000;

test('a date-only from/to is that day’s start in the query’s zone, UTC without one', () => {
  assert.deepEqual(resolveRange({ from: '2026-12-01', to: '2026-12-02' }), {
    from: Date.UTC(2026, 11, 1),
    to: Date.UTC(2026, 11, 2),
  });
  assert.deepEqual(resolveRange({ from: '2026-12-01', to: '2026-12-02', tz: 'Asia/Kolkata' }), {
    from: Date.UTC(2026, 11, 1) - 5.5 * HOUR,
    to: Date.UTC(2026, 11, 2) - 5.5 * HOUR,
  });
  // A day and a date-time mix; the date-time keeps its own zone.
  assert.deepEqual(resolveRange({ from: '2026-07-01', to: '2026-07-01T12:00:00Z', tz: 'America/New_York' }), {
    from: Date.UTC(2026, 6, 1, 4),
    to: Date.UTC(2026, 6, 1, 12),
  });
  // Clocks jump from 00:00 to 01:00 in Havana that night: the day starts at 01:00 local.
  assert.equal(
    resolveRange({ from: '2026-03-08', to: '2026-03-09', tz: 'America/Havana' }).from,
    Date.UTC(2026, 2, 8, 5),
  );
  // A 23-hour day (DST starts at 02:00 in Paris).
  const paris = resolveRange({ from: '2026-03-29', to: '2026-03-30', tz: 'Europe/Paris' });
  assert.equal(paris.to - paris.from, 23 * HOUR);
});

test('a date that is not in the calendar is a coded 400 naming the field', () => {
  for (const [input, field] of [
    [{ from: '2026-02-30' }, 'from'],
    [{ from: '2026-13-01' }, 'from'],
    [{ from: '2026-00-10' }, 'from'],
    [{ to: '2025-02-29' }, 'to'],
    [{ from: '2026-12-01', to: '2026-04-31', tz: 'Asia/Kolkata' }, 'to'],
    [{ from: '2026-12-01', tz: 'Mars/Olympus' }, 'tz'],
  ] as const) {
    assert.throws(
      () => resolveRange(input, Date.UTC(2027, 0, 1)),
      (err: unknown) => {
        assert.ok(err instanceof TallyError);
        assert.equal(err.code, 'TALLY_INVALID_QUERY');
        assert.equal(err.statusCode, 400);
        assert.equal(err.details?.[0].field, field, JSON.stringify(input));
        assert.match(err.message, new RegExp(`^${field} `));
        return true;
      },
    );
  }
  assert.throws(
    () => resolveRange({ from: '2026-02-30' }),
    /from must be a calendar date from 1970 to 9999 \(got 2026-02-30\)/,
  );
  // Leap day of a leap year is a day.
  assert.equal(resolveRange({ from: '2028-02-29', to: '2028-03-01' }).from, Date.UTC(2028, 1, 29));
});
