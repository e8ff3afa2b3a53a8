import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MultipleErrors, ProtocolError, UserError } from '@platformatic/kafka';
import { isTransientKafkaError, retryTransient } from '../../src/kafka/transient.ts';

const notCoordinator = () => new ProtocolError('NOT_COORDINATOR');
const invalidPartitions = () => new ProtocolError('INVALID_PARTITIONS');

test('a broker still starting is transient; a refusal and bad options are not', () => {
  assert.equal(isTransientKafkaError(notCoordinator()), true);
  assert.equal(isTransientKafkaError(new ProtocolError('COORDINATOR_LOAD_IN_PROGRESS')), true);
  assert.equal(isTransientKafkaError(new MultipleErrors('joining failed', [notCoordinator()])), true);
  assert.equal(isTransientKafkaError(new Error('connect ECONNREFUSED')), true);
  assert.equal(isTransientKafkaError(invalidPartitions()), false);
  assert.equal(isTransientKafkaError(new MultipleErrors('create failed', [invalidPartitions()])), false);
  assert.equal(isTransientKafkaError(new UserError('bad option')), false);
});

test('retryTransient retries transient errors until the attempt succeeds', async () => {
  let calls = 0;
  const retried: number[] = [];
  const result = await retryTransient(
    async () => {
      calls++;
      if (calls < 4) throw notCoordinator();
      return 'joined';
    },
    { forMs: 10_000, onRetry: (_err, attempt) => retried.push(attempt) },
  );
  assert.equal(result, 'joined');
  assert.equal(calls, 4);
  assert.deepEqual(retried, [0, 1, 2]);
});

test('retryTransient rethrows a refusal at once, and the last error after the deadline or a stop', async () => {
  let calls = 0;
  const refusal = invalidPartitions();
  await assert.rejects(
    retryTransient(
      () => {
        calls++;
        return Promise.reject(refusal);
      },
      { forMs: 10_000 },
    ),
    (err) => err === refusal,
  );
  assert.equal(calls, 1);

  calls = 0;
  const started = Date.now();
  await assert.rejects(
    retryTransient(
      () => {
        calls++;
        return Promise.reject(notCoordinator());
      },
      { forMs: 300 },
    ),
    (err) => err instanceof ProtocolError,
  );
  assert.ok(calls >= 2, `retried until the deadline (${calls} calls)`);
  assert.ok(Date.now() - started < 5_000);

  calls = 0;
  await assert.rejects(
    retryTransient(
      () => {
        calls++;
        return Promise.reject(notCoordinator());
      },
      { forMs: 10_000, isStopping: () => calls >= 2 },
    ),
  );
  assert.equal(calls, 2);
});
