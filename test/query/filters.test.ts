import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TallyError } from '../../src/errors/tally-error.ts';
import {
  EVENT_DIMENSIONS,
  FILTER_LIMITS,
  formatFilter,
  parseFilter,
  parseFilters,
  VISIT_DIMENSIONS,
  type Dimension,
  type Filter,
  type FilterOp,
} from '../../src/query/filters.ts';

function fieldOf(fn: () => unknown): { field: string; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TallyError);
    assert.equal(err.code, 'TALLY_INVALID_QUERY');
    assert.equal(err.statusCode, 400);
    return { field: err.details![0].field, message: err.details![0].message };
  }
  assert.fail('expected a TALLY_INVALID_QUERY error');
}

test('each operator, alternatives, escapes and property keys', () => {
  assert.deepEqual(parseFilter('channel==Email', 0), {
    dimension: { kind: 'visit', name: 'channel' },
    op: 'is',
    values: ['Email'],
  });
  assert.deepEqual(parseFilter('page!=/a|/b', 0), {
    dimension: { kind: 'event', name: 'page' },
    op: 'is_not',
    values: ['/a', '/b'],
  });
  assert.deepEqual(parseFilter('browser~=chr', 0).op, 'contains');
  assert.deepEqual(parseFilter('os!~win', 0).op, 'not_contains');
  assert.deepEqual(parseFilter('property:plan==pro\\|max|a\\\\b', 0), {
    dimension: { kind: 'property', key: 'plan' },
    op: 'is',
    values: ['pro|max', 'a\\b'],
  });
  // The first operator ends the dimension; the rest, operators included, is the value.
  assert.deepEqual(parseFilter('page==a==b!=c', 0).values, ['a==b!=c']);
  assert.deepEqual(parseFilter("page==' OR 1=1; --%_", 0).values, ["' OR 1=1; --%_"]);
  assert.deepEqual(parseFilters(undefined), []);
});

test('errors name filter[i] and the wrong part', () => {
  const cases: [string, RegExp][] = [
    ['channel', /expected <dimension><op><value>/],
    ['==Email', /dimension is missing/],
    ['colour==red', /unknown dimension "colour"/],
    ['property:==x', /unknown dimension "property:"/],
    ['page==', /value 1 is empty/],
    ['page==a||b', /value 2 is empty/],
    ['page==a\\b', /bad escape at character 2/],
    ['page==a\\', /bad escape/],
    ['page==a\u0000b', /NUL/],
    ['page==\ud800', /unpaired surrogate/],
    [`page==${'x'.repeat(10 * 1024)}`, /longer than 2048/],
    [`page==${Array.from({ length: 101 }, (_, i) => i).join('|')}`, /at most 100 alternatives/],
  ];
  for (const [text, message] of cases) {
    const e = fieldOf(() => parseFilters(['device==mobile', text]));
    assert.equal(e.field, 'filter[1]', text);
    assert.match(e.message, message, text);
  }
  const many = fieldOf(() => parseFilters(Array.from({ length: 101 }, () => 'device==mobile')));
  assert.equal(many.field, 'filter');
  assert.equal(
    parseFilters(Array.from({ length: FILTER_LIMITS.filters }, () => 'device==mobile')).length,
    100,
  );
});

const dimension: fc.Arbitrary<Dimension> = fc.oneof(
  fc.constantFrom(...EVENT_DIMENSIONS).map((name) => ({ kind: 'event' as const, name })),
  fc.constantFrom(...VISIT_DIMENSIONS).map((name) => ({ kind: 'visit' as const, name })),
  fc
    .string({ minLength: 1, maxLength: 20 })
    .filter((k) => !/[=!~\0]/.test(k) && k.isWellFormed())
    .map((key) => ({ kind: 'property' as const, key })),
);
const value = fc
  .oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom('|', '\\', '\\|', '==', '(none)', '%_'))
  .filter((v) => !v.includes('\0') && v.isWellFormed());
const filter: fc.Arbitrary<Filter> = fc
  .record({
    dimension,
    op: fc.constantFrom<FilterOp>('is', 'is_not', 'contains', 'not_contains'),
    values: fc.array(value, { minLength: 1, maxLength: 5 }),
  })
  .map((f) => ({ ...f })); // fc.record builds null-prototype objects

test('property: formatFilter then parseFilter gives the filter back', () => {
  fc.assert(
    fc.property(filter, (f) => {
      assert.deepEqual(parseFilter(formatFilter(f), 0), f);
    }),
    { numRuns: 2000 },
  );
});

test('property: any string parses or fails with a coded 400 for its index', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 60 }), fc.nat(99), (text, i) => {
      try {
        parseFilter(text, i);
      } catch (err) {
        assert.ok(err instanceof TallyError && err.code === 'TALLY_INVALID_QUERY');
        assert.equal(err.details![0].field, `filter[${i}]`);
      }
    }),
    { numRuns: 3000 },
  );
});
