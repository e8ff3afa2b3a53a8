import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { canonicalZone, isValidZone, zonedBuckets } from '../../src/query/time-buckets.ts';

test('Kolkata day buckets start at 18:30 UTC and carry the offset', () => {
  const from = Date.UTC(2024, 6, 1, 0, 0);
  const to = Date.UTC(2024, 6, 2, 0, 0);
  const buckets = zonedBuckets(from, to, 'day', 'Asia/Kolkata');
  assert.deepEqual(
    buckets.map((b) => [b.label, new Date(b.from).toISOString(), new Date(b.to).toISOString()]),
    [
      ['2024-07-01T00:00:00+05:30', '2024-07-01T00:00:00.000Z', '2024-07-01T18:30:00.000Z'],
      ['2024-07-02T00:00:00+05:30', '2024-07-01T18:30:00.000Z', '2024-07-02T00:00:00.000Z'],
    ],
  );
});

test('hour buckets across a DST change stay one real hour long', () => {
  // Europe/Paris moves from +02:00 to +01:00 at 01:00 UTC on 2024-10-27.
  const buckets = zonedBuckets(Date.UTC(2024, 9, 26, 23), Date.UTC(2024, 9, 27, 3), 'hour', 'Europe/Paris');
  assert.equal(buckets.length, 4);
  assert.ok(buckets.every((b) => b.to - b.from === 3_600_000));
  assert.deepEqual(
    buckets.map((b) => b.label),
    [
      '2024-10-27T01:00:00+02:00',
      '2024-10-27T02:00:00+02:00',
      '2024-10-27T02:00:00+01:00',
      '2024-10-27T03:00:00+01:00',
    ],
  );
});

/**
 * Counts every Intl.DateTimeFormat made until the test ends (luxon looks the constructor up at
 * each call): `built()` is the count so far.
 */
function countDateTimeFormats(t: TestContext): () => number {
  const Real = Intl.DateTimeFormat;
  let built = 0;
  Intl.DateTimeFormat = new Proxy(Real, {
    construct(target, args: ConstructorParameters<typeof Intl.DateTimeFormat>) {
      built++;
      return new target(...args);
    },
  });
  t.after(() => (Intl.DateTimeFormat = Real));
  return () => built;
}

test('a zone is checked once, not per question: each check builds an Intl.DateTimeFormat, ~25 KB outside the heap', (t) => {
  const built = countDateTimeFormats(t);
  const zones = ['America/Havana', 'america/havana', 'Fantasia/Castle', 'UTC'];
  const first = zones.map(isValidZone);
  assert.deepEqual(first, [true, true, false, true]);
  const afterFirst = built();
  for (let i = 0; i < 100; i++) assert.deepEqual(zones.map(isValidZone), first);
  assert.equal(built(), afterFirst, 'no Intl.DateTimeFormat for a zone checked before');
});

test('every spelling of a zone reaches luxon as one name: its caches (a zone and a format a name) stay bounded', (t) => {
  assert.equal(canonicalZone('europe/PARIS'), 'Europe/Paris');
  assert.equal(canonicalZone('Fantasia/Castle'), undefined);
  assert.equal(canonicalZone('utc'), 'UTC');
  const built = countDateTimeFormats(t);
  const from = Date.UTC(2024, 9, 26, 20);
  const expected = zonedBuckets(from, from + 6 * 3_600_000, 'hour', 'Asia/Tokyo');
  const afterFirst = built();
  // 64 spellings of one name: before, luxon made a zone and an Intl.DateTimeFormat for each.
  for (let mask = 0; mask < 64; mask++) {
    const name = [...'asia/tokyo'].map((c, i) => (i < 6 && (mask >> i) & 1 ? c.toUpperCase() : c)).join('');
    assert.deepEqual(zonedBuckets(from, from + 6 * 3_600_000, 'hour', name), expected);
  }
  assert.equal(built(), afterFirst, 'no Intl.DateTimeFormat for another spelling of a zone luxon has');
});
