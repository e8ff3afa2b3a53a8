import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { createMetrics } from '../../src/observability/metrics.ts';
import { BatchProcessor, MAX_STATEMENT_TIMEOUTS } from '../../src/process/batch-processor.ts';
import { BatchWriter, type BatchInput } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { createPool, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS } from '../../src/store/pool.ts';
import { startTestPostgres } from '../helpers/kafka-process.ts';
import { toTallyEvent } from '../helpers/oracle.ts';

/**
 * A real statement timeout: a batch waits at its project's visits lock, held the way
 * `tally sessions rebuild` holds it, past statement_timeout (shortened here). SQLSTATE 57014
 * becomes TALLY_DB_TIMEOUT; retried, the batch commits once the lock is gone, and a lock that never
 * goes gives the batch back after MAX_STATEMENT_TIMEOUTS attempts with nothing stored. (A lock is
 * the easy way to make a write slow on cue; this pool has no lock_timeout, Tally's have: see the
 * next test.)
 */
test('statement timeouts of a batch: retried, the transient one loses nothing, the lasting one is given back', async (t) => {
  const db = await startTestPostgres(t);
  const limited = new pg.Pool({ connectionString: db.connectionString, max: 3, statement_timeout: 2000 });
  limited.on('error', () => undefined);
  t.after(() => limited.end());
  const writer = new BatchWriter({
    pool: limited,
    partitions: new RawPartitions(limited, undefined),
    storeRaw: true,
  });
  const ts = Date.now() - 60_000;
  const batch = (id: string): BatchInput => ({
    events: [toTallyEvent({ event_id: id, type: 'page_view', user_id: 'u', ts }, 'p')],
  });
  const stored = async () =>
    Number(
      (await db.pool.query<{ n: string }>("SELECT count(*) AS n FROM tally.events WHERE project = 'p'"))
        .rows[0].n,
    );
  await writer.write(batch('first'));

  /** Holds project p's visits lock EXCLUSIVE in an open transaction, as a rebuild does. */
  const holdLock = async () => {
    const holder = await db.pool.connect();
    await holder.query('BEGIN');
    await holder.query("SELECT tally.session_project_lock('p', true)");
    return async () => {
      await holder.query('COMMIT');
      holder.release();
    };
  };
  const processor = (onFailure: () => Promise<void>) => {
    const metrics = createMetrics(undefined, { defaults: false });
    let writes = 0;
    const p = new BatchProcessor({
      writer: {
        write: async (input) => {
          writes += 1;
          try {
            return await writer.write(input);
          } catch (err) {
            await onFailure();
            throw err;
          }
        },
      },
      metrics,
      logger: pino({ level: 'silent' }),
    });
    return { p, metrics, writes: () => writes };
  };
  const policy = { maxRetryTimeMs: Number.POSITIVE_INFINITY, minDelayMs: 10, maxDelayMs: 20 };
  const timeoutsCounted = async (metrics: ReturnType<typeof createMetrics>) =>
    (await metrics.processingErrors.get()).values.find((v) => v.labels.kind === 'TALLY_DB_TIMEOUT')?.value;

  // Transient: the lock goes after the first timeout; the retry commits the batch.
  let release: (() => Promise<void>) | undefined = await holdLock();
  const transient = processor(async () => {
    await release?.();
    release = undefined;
  });
  const result = await transient.p.process(batch('during-rebuild'), policy);
  assert.equal(result.inserted, 1);
  assert.equal(transient.writes(), 2);
  assert.equal(await timeoutsCounted(transient.metrics), 1);
  assert.equal(await stored(), 2);

  // Lasting: every attempt times out; given back after the bound, nothing of it stored.
  const releaseLasting = await holdLock();
  try {
    const lasting = processor(() => Promise.resolve());
    await assert.rejects(lasting.p.process(batch('never'), policy), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TALLY_DB_TIMEOUT');
      assert.match(err.message, /canceling statement due to statement timeout/);
      return true;
    });
    assert.equal(lasting.writes(), MAX_STATEMENT_TIMEOUTS);
    assert.equal(await timeoutsCounted(lasting.metrics), MAX_STATEMENT_TIMEOUTS);
  } finally {
    await releaseLasting();
  }
  assert.equal(await stored(), 2);
});

/**
 * With lock_timeout below statement_timeout, as on Tally's pools (pool.ts), a batch waiting at a
 * lock a rebuild holds fails with SQLSTATE 55P03 before its statement timeout: TALLY_DB_UNAVAILABLE,
 * retried past MAX_STATEMENT_TIMEOUTS, so a long rebuild delays a batch but never gets it split or
 * dead-lettered. Shortened here: lock_timeout 300 ms, statement_timeout 5 s.
 */
test('a lock wait fails at lock_timeout, before statement_timeout, and is retried without bound', async (t) => {
  const db = await startTestPostgres(t);
  const tallys = createPool(
    { connectionString: db.connectionString, max: 1, applicationName: 'tally-test' },
    () => undefined,
  );
  t.after(() => tallys.end());
  const { rows: shown } = await tallys.query<{ name: string; ms: number }>(
    `SELECT name, setting::int AS ms FROM pg_settings
      WHERE name IN ('lock_timeout', 'statement_timeout') ORDER BY name`,
  );
  assert.deepEqual(shown, [
    { name: 'lock_timeout', ms: LOCK_TIMEOUT_MS },
    { name: 'statement_timeout', ms: STATEMENT_TIMEOUT_MS },
  ]);
  assert.ok(LOCK_TIMEOUT_MS < STATEMENT_TIMEOUT_MS);

  const limited = new pg.Pool({
    connectionString: db.connectionString,
    max: 3,
    statement_timeout: 5000,
    lock_timeout: 300,
  });
  limited.on('error', () => undefined);
  t.after(() => limited.end());
  const writer = new BatchWriter({
    pool: limited,
    partitions: new RawPartitions(limited, undefined),
    storeRaw: true,
  });
  const ts = Date.now() - 60_000;
  const batch = (id: string): BatchInput => ({
    events: [toTallyEvent({ event_id: id, type: 'page_view', user_id: 'u', ts }, 'p')],
  });
  await writer.write(batch('first'));

  const holder = await db.pool.connect();
  await holder.query('BEGIN');
  await holder.query("SELECT tally.session_project_lock('p', true)");
  const failuresBeforeRelease = MAX_STATEMENT_TIMEOUTS + 2;
  const errors: string[] = [];
  let writes = 0;
  const metrics = createMetrics(undefined, { defaults: false });
  const processor = new BatchProcessor({
    writer: {
      write: async (input) => {
        writes += 1;
        try {
          return await writer.write(input);
        } catch (err) {
          errors.push(`${(err as { code?: string }).code}: ${(err as Error).message}`);
          if (errors.length === failuresBeforeRelease) {
            await holder.query('COMMIT');
            holder.release();
          }
          throw err;
        }
      },
    },
    metrics,
    logger: pino({ level: 'silent' }),
  });
  const result = await processor.process(batch('during-rebuild'), {
    maxRetryTimeMs: Number.POSITIVE_INFINITY,
    minDelayMs: 10,
    maxDelayMs: 20,
  });
  assert.equal(result.inserted, 1);
  assert.equal(writes, failuresBeforeRelease + 1);
  assert.equal(errors.length, failuresBeforeRelease);
  for (const e of errors)
    assert.match(e, /^TALLY_DB_UNAVAILABLE: PostgreSQL: canceling statement due to lock timeout/);
  assert.deepEqual(
    (await metrics.processingErrors.get()).values.map((v) => [v.labels.kind, v.value]),
    [['TALLY_DB_UNAVAILABLE', failuresBeforeRelease]],
  );
});
