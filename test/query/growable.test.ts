import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CodeColumn } from '../../src/query/columnar/growable.ts';

/**
 * The builder's code columns (src/query/columnar/growable.ts) start one byte wide and widen as
 * codes grow: whatever the order of pushes, pads and widenings, they read back as a plain array
 * of the same codes, in the narrowest width that holds them.
 */

const opArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 300 }).map((code) => ({ push: code })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x20000 }).map((code) => ({ push: code })) },
  { weight: 1, arbitrary: fc.nat(3000).map((extra) => ({ pad: extra })) },
);

test('a code column reads back as the plain array of its pushes and pads, in the narrowest width', () => {
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 400 }), fc.nat(2000), (ops, prefill) => {
      const column = new CodeColumn();
      const want: number[] = [];
      // Past the first 1,024 slots too: growing and widening then copy what is there.
      for (let i = 0; i < prefill; i++) {
        column.push(i % 7);
        want.push(i % 7);
      }
      for (const op of ops) {
        if ('push' in op) {
          column.push(op.push);
          want.push(op.push);
        } else {
          column.padTo(want.length + op.pad);
          while (want.length < column.length) want.push(0);
        }
      }
      const got = column.view();
      assert.deepEqual(Array.from(got), want);
      const max = want.reduce((m, c) => Math.max(m, c), 0);
      const width = max >= 0x10000 ? 4 : max >= 0x100 ? 2 : 1;
      assert.equal(got.BYTES_PER_ELEMENT, width, `max code ${max}`);
    }),
    { numRuns: 300 },
  );
});

test('padding to a length already reached changes nothing', () => {
  const column = new CodeColumn();
  for (const c of [5, 6, 7]) column.push(c);
  column.padTo(2);
  assert.deepEqual(Array.from(column.view()), [5, 6, 7]);
});
