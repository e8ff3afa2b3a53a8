import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyPgError, isPgError } from '../../src/store/pg-errors.ts';

test('a SQLSTATE or a lost connection is a PostgreSQL error; anything else is not', () => {
  assert.equal(isPgError(Object.assign(new Error('deadlock detected'), { code: '40P01' })), true);
  assert.equal(isPgError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), true);
  assert.equal(isPgError(new Error('plain')), false);
  assert.equal(isPgError(Object.assign(new Error('node'), { code: 'ERR_INVALID_ARG_TYPE' })), false);
  assert.equal(isPgError(null), false);
});

test('a deadlock is retriable and coded; a constraint violation is not retriable', () => {
  const deadlock = classifyPgError(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
  assert.equal(deadlock.code, 'TALLY_DB_UNAVAILABLE');
  assert.equal(deadlock.retriable, true);
  const unique = classifyPgError(Object.assign(new Error('duplicate key'), { code: '23505' }));
  assert.equal(unique.code, 'TALLY_DB_ERROR');
  assert.equal(unique.retriable, false);
});
