import type pg from 'pg';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import type { WebDataset } from '../web-dataset.ts';
import { groundTruth } from './web-truth.ts';

/**
 * Loads the web data set through Tally's real write path: BatchWriter (dedup keys, raw rows with
 * their derived dimensions, rollups, sessions: whatever tally.write_events does on this commit),
 * `batchSize` events a batch, `inFlight` batches at a time, as `tally process` workers would.
 * Returns the wall time of the whole load.
 */
export async function loadThroughWriter(
  pool: pg.Pool,
  dataset: WebDataset,
  opts: { events: number; batchSize: number; inFlight: number; log: (line: string) => void },
): Promise<{ seconds: number }> {
  const writer = new BatchWriter({ pool, partitions: new RawPartitions(pool, undefined), storeRaw: true });
  const batches = dataset.batches(opts.batchSize);
  let written = 0;
  let nextReport = opts.events / 10;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: opts.inFlight }, async () => {
      for (let b = batches.next(); !b.done; b = batches.next()) {
        const result = await writer.write({ events: b.value });
        if (result.inserted !== b.value.length)
          throw new Error(
            `analytics load: ${b.value.length - result.inserted} events of a batch were not stored`,
          );
        written += result.inserted;
        if (written >= nextReport) {
          const rate = Math.round(written / ((performance.now() - started) / 1000));
          opts.log(
            `analytics load: ${written.toLocaleString('en-US')} events (${rate.toLocaleString('en-US')}/s)`,
          );
          nextReport += opts.events / 10;
        }
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000 };
}

export interface WriterCoverage {
  /** Stored raw rows with a user_agent: the intake part of issue 20 is in. */
  userAgents: number;
  /** Stored raw rows with a derived browser: the derivation is in. */
  derived: number;
  sessions: number;
}

export async function writerCoverage(client: pg.ClientBase): Promise<WriterCoverage> {
  const { rows } = await client.query<WriterCoverage>(
    `SELECT (SELECT count(*) FROM tally.events WHERE user_agent IS NOT NULL)::int8::float8 AS "userAgents",
            (SELECT count(*) FROM tally.events WHERE browser IS NOT NULL)::int8::float8 AS derived,
            (SELECT count(*) FROM tally.sessions)::int8::float8 AS sessions`,
  );
  return rows[0];
}

const TRUTH_COLUMNS = [
  ['user_agent', 'userAgent'],
  ['country', 'country'],
  ['hostname', 'hostname'],
  ['path', 'path'],
  ['referrer_host', 'referrerHost'],
  ['utm_source', 'utmSource'],
  ['utm_medium', 'utmMedium'],
  ['utm_campaign', 'utmCampaign'],
  ['utm_term', 'utmTerm'],
  ['channel', 'channel'],
  ['browser', 'browser'],
  ['os', 'os'],
  ['device', 'device'],
] as const;

/**
 * Before the issue-20 writer is merged: writes the generator's ground truth (web-truth.ts) into
 * the raw rows' dimension columns, so the baseline runs over realistic columns. The data set is
 * generated again (deterministic) into an unlogged staging table, joined in one UPDATE, and the
 * table rewritten (VACUUM FULL) so its size is that of rows written once.
 */
export async function fillStandInDimensions(
  pool: pg.ClientBase,
  dataset: WebDataset,
  log: (line: string) => void,
): Promise<void> {
  const started = performance.now();
  const cols = TRUTH_COLUMNS.map(([c]) => c);
  await pool.query(
    `CREATE UNLOGGED TABLE tally.bench_truth (event_id text PRIMARY KEY, ${cols.map((c) => `${c} text`).join(', ')}, is_bot boolean)`,
  );
  try {
    for (const batch of dataset.batches(20_000)) {
      const truths = batch.map(groundTruth);
      const arrays = TRUTH_COLUMNS.map(([, k]) => truths.map((t) => t[k]));
      const params = [batch.map((e) => e.eventId), ...arrays, truths.map((t) => t.bot)];
      const casts = params.map((_p, i) => `$${i + 1}::${i === params.length - 1 ? 'bool' : 'text'}[]`);
      await pool.query(`INSERT INTO tally.bench_truth SELECT * FROM unnest(${casts.join(', ')})`, params);
    }
    const { rowCount } = await pool.query(
      `UPDATE tally.events e SET ${[...cols, 'is_bot'].map((c) => `${c} = t.${c}`).join(', ')}
         FROM tally.bench_truth t WHERE e.project = 'default' AND e.event_id = t.event_id`,
    );
    // The second generation must be the first one again (same seed), event for event.
    if (rowCount !== dataset.counts.events)
      throw new Error(
        `analytics stand-in: ${rowCount} of ${dataset.counts.events} raw rows matched the regenerated data set`,
      );
  } finally {
    await pool.query('DROP TABLE IF EXISTS tally.bench_truth');
  }
  await pool.query('VACUUM FULL tally.events');
  log(`analytics: stand-in dimensions written in ${Math.round((performance.now() - started) / 1000)} s`);
}

export interface TableSize {
  table: string;
  bytes: number;
}

/** Every table of schema tally with its indexes, TOAST and partitions (pg_total_relation_size). */
export async function tallyTableSizes(pool: pg.ClientBase): Promise<TableSize[]> {
  const { rows } = await pool.query<{ table: string; bytes: string }>(
    `SELECT c.relname AS table,
            CASE WHEN c.relkind = 'p'
                 THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t)
                 ELSE pg_total_relation_size(c.oid) END AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'tally' AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
      ORDER BY 2 DESC, 1`,
  );
  return rows.map((r) => ({ table: r.table, bytes: Number(r.bytes) }));
}
