import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { arrayLiteral, SqlParams } from '../../src/store/sql-params.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';

// The array literals SqlParams makes in place of pg's (sql-params.ts) must read back in
// PostgreSQL as exactly the values given, whatever the strings hold.
test('array literals read back in PostgreSQL as the values given', async (t) => {
  const db = await startTestPostgres(t);
  const roundTrip = async (values: unknown[], type: string): Promise<unknown[]> => {
    const p = new SqlParams();
    const placeholder = p.add(values, type);
    assert.equal(typeof p.values[0], 'string', 'sent as a literal, not left to pg');
    const { rows } = await db.pool.query<{ a: unknown[] }>(`SELECT ${placeholder} AS a`, p.values);
    return rows[0].a;
  };
  // Strings without NUL (PostgreSQL's text cannot hold it), with the characters that need quoting.
  const text = fc.oneof(
    fc.string({ unit: 'binary' }).map((s) => s.replaceAll('\0', '')),
    fc.constantFrom('', 'NULL', 'null', ' a ', '{', '}', ',', '"', '\\', '\\"', 'a"b\\c', '{"x",NULL}'),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.option(text, { nil: null }), { maxLength: 20 }), async (values) => {
      assert.deepEqual(await roundTrip(values, 'text[]'), values);
    }),
    { numRuns: 200 },
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.option(fc.double({ noDefaultInfinity: false }), { nil: null }), { maxLength: 20 }),
      async (values) => {
        // -0 goes as '0' (String(-0)), so it reads back as 0; NaN equals NaN for deepEqual.
        const want = values.map((v) => (Object.is(v, -0) ? 0 : v));
        assert.deepEqual(await roundTrip(values, 'float8[]'), want);
      },
    ),
    { numRuns: 100 },
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.option(fc.integer(), { nil: null }), { maxLength: 20 }), async (values) => {
      assert.deepEqual(await roundTrip(values, 'int4[]'), values);
    }),
    { numRuns: 50 },
  );
  assert.deepEqual(await roundTrip([true, null, false], 'bool[]'), [true, null, false]);
});

test('an array of anything else is left to pg', () => {
  assert.equal(arrayLiteral([Buffer.from('ab')]), undefined);
  assert.equal(arrayLiteral(['a', {}]), undefined);
  const p = new SqlParams();
  const buffers = [Buffer.from('ab')];
  p.add(buffers, 'bytea[]');
  assert.equal(p.values[0], buffers);
  assert.equal(arrayLiteral([]), '{}');
  assert.equal(arrayLiteral(['a"b', 'c\\d', null, 1.5, true]), '{"a\\"b","c\\\\d",NULL,1.5,t}');
});
