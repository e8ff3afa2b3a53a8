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

test('a statement timeout (57014) is retriable with its own code, naming statement_timeout', () => {
  const err = classifyPgError(
    Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }),
  );
  assert.equal(err.code, 'TALLY_DB_TIMEOUT');
  assert.equal(err.retriable, true);
  assert.equal(err.statusCode, 503);
  assert.match(
    err.message,
    /^PostgreSQL: canceling statement due to statement timeout \(statement_timeout is 60 s\)$/,
  );
  // 57014 from a cancel request (pg_cancel_backend) is not statement_timeout's: not named.
  assert.equal(
    classifyPgError(Object.assign(new Error('canceling statement due to user request'), { code: '57014' }))
      .message,
    'PostgreSQL: canceling statement due to user request',
  );
  // The rest of class 57 (the server shutting down) is an outage, retried without bound.
  assert.equal(
    classifyPgError(Object.assign(new Error('terminating'), { code: '57P01' })).code,
    'TALLY_DB_UNAVAILABLE',
  );
});
