import assert from 'node:assert/strict';
import { test } from 'node:test';
import { piecesFor } from '../../src/query/range-pieces.ts';
import { DAY, HOUR, MINUTE } from '../../src/store/levels.ts';

const H = 3_600_000;
const M = 60_000;
const D = 24 * H;

test('uses days, then hours, then minutes, and covers the range exactly once', () => {
  const from = 3 * D - 90 * M; // 22:30 the day before
  const to = 5 * D + 2 * H + 15 * M;
  const pieces = piecesFor(from, to, 7);
  assert.deepEqual(
    pieces.map((p) => [p.level, p.from, p.to]),
    [
      [MINUTE.level, from, 3 * D - H],
      [HOUR.level, 3 * D - H, 3 * D],
      [DAY.level, 3 * D, 5 * D],
      [HOUR.level, 5 * D, 5 * D + 2 * H],
      [MINUTE.level, 5 * D + 2 * H, to],
    ],
  );
  assert.ok(pieces.every((p) => p.index === 7));
});

test('a Kolkata day (18:30 to 18:30 UTC) needs minutes at both ends', () => {
  const from = D + 18 * H + 30 * M;
  const pieces = piecesFor(from, from + D, 0);
  assert.deepEqual(
    pieces.map((p) => p.level),
    [MINUTE.level, HOUR.level, MINUTE.level],
  );
  const covered = pieces.reduce((sum, p) => sum + (p.to - p.from), 0);
  assert.equal(covered, D);
});

test('a short range inside one hour is minutes only', () => {
  assert.deepEqual(piecesFor(10 * M, 20 * M, 0), [
    { level: MINUTE.level, from: 10 * M, to: 20 * M, index: 0 },
  ]);
});
