import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { TallyError } from '../../src/errors/tally-error.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { BatchProcessor, MAX_STATEMENT_TIMEOUTS } from '../../src/process/batch-processor.ts';
import type { BatchResult } from '../../src/store/batch-writer.ts';

const committed: BatchResult = {
  fresh: [],
  ofDeletedUser: [],
  inserted: 0,
  duplicates: 0,
  dropped: 0,
  insertedEvents: [],
  insertedBots: 0,
};
// The Kafka processor's policy (no time budget), with short delays.
const endless = { maxRetryTimeMs: Number.POSITIVE_INFINITY, minDelayMs: 1, maxDelayMs: 2 };

/** A BatchProcessor whose writer fails with `failures` in turn, then commits. */
function processorFailing(failures: readonly TallyError[]) {
  let writes = 0;
  const metrics = createMetrics(undefined, { defaults: false });
  const processor = new BatchProcessor({
    writer: {
      write: () => {
        const err = failures[writes++];
        return err === undefined ? Promise.resolve(committed) : Promise.reject(err);
      },
    },
    metrics,
    logger: pino({ level: 'silent' }),
  });
  return { processor, metrics, writes: () => writes };
}

const timeout = () =>
  new TallyError('TALLY_DB_TIMEOUT', 'PostgreSQL: canceling statement due to statement timeout');
const outage = () => new TallyError('TALLY_DB_UNAVAILABLE', 'PostgreSQL: connect ECONNREFUSED');

test(`a batch that times out every time is given back after ${MAX_STATEMENT_TIMEOUTS} attempts, even with no time budget`, async () => {
  const { processor, metrics, writes } = processorFailing(Array.from({ length: 50 }, timeout));
  await assert.rejects(processor.process({ events: [] }, endless), { code: 'TALLY_DB_TIMEOUT' });
  assert.equal(writes(), MAX_STATEMENT_TIMEOUTS);
  const errors = await metrics.processingErrors.get();
  assert.deepEqual(
    errors.values.map((v) => [v.labels.kind, v.value]),
    [['TALLY_DB_TIMEOUT', MAX_STATEMENT_TIMEOUTS]],
  );
});

test('a timeout that passes before the bound loses nothing: the retry commits the batch', async () => {
  const { processor, writes } = processorFailing(Array.from({ length: MAX_STATEMENT_TIMEOUTS - 1 }, timeout));
  assert.equal(await processor.process({ events: [] }, endless), committed);
  assert.equal(writes(), MAX_STATEMENT_TIMEOUTS);
});

test('the bound counts timeouts only: an outage between them is retried as long as it lasts', async () => {
  const failures = [timeout(), ...Array.from({ length: 10 }, outage), timeout(), outage()];
  const { processor, writes } = processorFailing(failures);
  assert.equal(await processor.process({ events: [] }, endless), committed);
  assert.equal(writes(), failures.length + 1);
});
