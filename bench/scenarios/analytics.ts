import { readdir, stat } from 'node:fs/promises';
import type pg from 'pg';
import { join } from 'node:path';
import { pino } from 'pino';
import { openDatabase } from '../../src/store/database.ts';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import {
  fillStandInDimensions,
  loadThroughWriter,
  tallyTableSizes,
  writerCoverage,
  type TableSize,
} from '../lib/analytics-load.ts';
import { crossCheck, measureBaseline, measureTally } from '../lib/analytics-measure.ts';
import { analyticsQuestions, TARGET_FILTERED_MS, TARGET_UNFILTERED_MS } from '../lib/analytics-questions.ts';
import { startService } from '../lib/processes.ts';
import { deleteUserRows } from './delete-user.ts';
import { productRows } from './product.ts';
import type { Row } from '../lib/report.ts';
import { percentile, round } from '../lib/stats.ts';
import type { BenchContext } from '../run.ts';
import { WebDataset } from '../web-dataset.ts';

const DAYS = 30;
const MINUTE = 60_000;
const BATCH_SIZE = 5_000;
const IN_FLIGHT = 3;
const SCENARIO = '8. analytics';
/** Tables that are neither raw events, the dedup ledger, nor a rollup or read model. */
const BOOKKEEPING = new Set(['api_keys', 'positions', 'data_versions', 'dead_letters', 'schema_migrations']);

export interface AnalyticsResult {
  rows: Row[];
  /** Loud problems: a missing endpoint, a wrong answer, a writer that derives nothing. */
  failures: string[];
  rssMb?: number;
}

const fmt = (n: number) => n.toLocaleString('en-US');

async function dirBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  let sum = 0;
  for (const e of entries) if (e.isFile()) sum += (await stat(join(e.parentPath, e.name))).size;
  return sum;
}

/**
 * Scenario 8 (issue 20, "Speed"): the web data set (bench/web-dataset.ts) loaded through Tally's
 * write path into a fresh embedded PostgreSQL, then every question of analytics-questions.ts
 * asked of `tally query` (uncached: each run's range a minute earlier; then cached) and of the
 * raw events as one SQL, in the same run; then bytes per event of the raw events against every
 * rollup and read model.
 */
export async function analyticsScenario(
  ctx: BenchContext,
  dir: string,
  log: (line: string) => void,
): Promise<AnalyticsResult> {
  const failures: string[] = [];
  const fail = (what: string) => {
    failures.push(what);
    log(`\n*** analytics: ${what} ***\n`);
  };
  const events = ctx.analyticsEvents;
  // An hour back, so the visits running past the end (minutes) are not in the future.
  const end = Math.floor(Date.now() / MINUTE) * MINUTE - 60 * MINUTE;
  const dataset = new WebDataset({ events, end, days: DAYS });
  const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'analytics') });
  try {
    const database = await openDatabase(
      { kind: 'external', connectionString: postgres.connectionString },
      {
        poolSize: IN_FLIGHT + 1,
        applicationName: 'tally-bench-analytics',
        logger: pino({ level: 'silent' }),
      },
    );
    try {
      log(
        `analytics: loading ${fmt(events)} events through BatchWriter (${BATCH_SIZE} a batch, ${IN_FLIGHT} in flight)`,
      );
      const load = await loadThroughWriter(database.pool, dataset, {
        events,
        batchSize: BATCH_SIZE,
        inFlight: IN_FLIGHT,
        log,
      });
      const { visits, visitors, botEvents } = dataset.counts;
      const shape = `${fmt(visitors)} visitors, ${fmt(visits)} visits, ${round((100 * botEvents) / events, 1)} % bot events, ${DAYS} days`;
      log(`analytics: loaded in ${round(load.seconds, 1)} s; ${shape}`);
      // One session without the service's statement timeout: at 10 million events the whole-table
      // statements and the baseline's queries run for minutes.
      const admin = await database.pool.connect();
      try {
        await admin.query("SET statement_timeout = 0; SET work_mem = '64MB'");
        const standIn = await checkWriter(admin, dataset, fail, log);
        const rows: Row[] = [
          {
            scenario: `${SCENARIO} load`,
            metric: `events/s into a fresh PostgreSQL through BatchWriter (${fmt(events)} events; ${shape}; batches of ${fmt(BATCH_SIZE)}, ${IN_FLIGHT} in flight)`,
            tally: Math.round(events / load.seconds),
            unit: 'events/s',
            note: standIn ? 'writer without issue-20 derivation (pre-merge)' : undefined,
          },
        ];
        const queryDir = join(dir, 'analytics-query');
        const asked = await askQuestions(
          ctx,
          admin,
          postgres.connectionString,
          queryDir,
          end,
          fail,
          log,
          // Scenario 10 first: scenario 9 adds a user and deletes it, changing the data.
          async (url) => [
            ...(await productRows({ ctx, admin, tallyUrl: url, end, days: DAYS, fail, log })),
            ...(await deleteUserRows({
              pool: database.pool,
              admin,
              tallyUrl: url,
              dataset,
              end,
              heavy: ctx.quick ? 2_000 : 100_000,
              events,
              fail,
              log,
            })),
          ],
        );
        rows.push(...asked.rows);
        const sizes = await tallyTableSizes(admin);
        const perEvent = sizes.map((t) => `${t.table} ${round(t.bytes / events, 1)}`);
        log(`analytics: bytes per event by table: ${perEvent.join(', ')}`);
        rows.push(...storageRows(sizes, await dirBytes(queryDir), events, standIn));
        return { rows, failures, rssMb: asked.rssMb };
      } finally {
        admin.release();
      }
    } finally {
      await database.stop();
    }
  } finally {
    await postgres.stop();
  }
}

/**
 * Waits until `tally query` says its read model holds every project (/ready's `read_model`
 * check), so that the questions measure the model and not PostgreSQL answering while it loads.
 * Returns how long that took (undefined: the service has no read model).
 */
async function readModelLoaded(url: string, log: (line: string) => void): Promise<number | undefined> {
  const started = Date.now();
  for (;;) {
    const res = await fetch(`${url}/ready`);
    const body = (await res.json()) as { checks?: Record<string, string> };
    const state = body.checks?.read_model;
    if (state === undefined) return undefined;
    if (state === 'ok') {
      log(`analytics: read model loaded in ${round((Date.now() - started) / 1000, 1)} s`);
      return Date.now() - started;
    }
    if (Date.now() - started > 60 * 60_000) throw new Error('the read model did not load within an hour');
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Whether the writer stored what issue 20 adds (user agent and country, derived dimensions,
 * sessions); each missing part is a problem. Without derived dimensions, writes the stand-in
 * (see fillStandInDimensions) and returns true. Then VACUUM ANALYZE, for index-only scans and plans.
 */
async function checkWriter(
  admin: pg.ClientBase,
  dataset: WebDataset,
  fail: (what: string) => void,
  log: (line: string) => void,
): Promise<boolean> {
  const coverage = await writerCoverage(admin);
  const standIn = coverage.derived === 0;
  if (coverage.userAgents === 0) fail('the writer stored no user_agent/country (issue-20 intake not merged)');
  if (standIn) {
    fail(
      'the writer stored no derived dimensions (issue-20 derivation not merged): the baseline runs over the bench stand-in (bench/lib/web-truth.ts)',
    );
    await fillStandInDimensions(admin, dataset, log);
  }
  if (coverage.sessions === 0) fail('tally.sessions is empty after the load (issue-20 sessions not merged)');
  await admin.query('VACUUM ANALYZE');
  return standIn;
}

/** Every question asked of `tally query` (a child process on this database) and of the raw events. */
async function askQuestions(
  ctx: BenchContext,
  client: pg.ClientBase,
  databaseUrl: string,
  queryDir: string,
  end: number,
  fail: (what: string) => void,
  log: (line: string) => void,
  /** Asked of the same `tally query` after the questions (scenarios 10 and 9). */
  after: (url: string) => Promise<Row[]>,
): Promise<{ rows: Row[]; rssMb: number }> {
  const port = await findFreePort();
  const tally = await startService({
    name: 'tally query',
    args: ['query'],
    env: {
      DATABASE_URL: databaseUrl,
      TALLY_QUERY_PORT: String(port),
      TALLY_GRPC_PORT: '0',
      TALLY_DATA_DIR: queryDir,
    },
    port,
  });
  try {
    const rows: Row[] = [];
    const loadMs = await readModelLoaded(tally.url, log);
    if (loadMs !== undefined) {
      rows.push({
        scenario: `${SCENARIO}, read model`,
        metric: `seconds for \`tally query\` to load its columnar read model from PostgreSQL (${fmt(ctx.analyticsEvents)} events)`,
        tally: round(loadMs / 1000, 1),
        unit: 's',
      });
    }
    const cachedAll: number[] = [];
    const events = fmt(ctx.analyticsEvents);
    for (const q of analyticsQuestions(DAYS)) {
      log(`analytics: ${q.name}`);
      const runs = ctx.analyticsRuns;
      const t = await measureTally(tally.url, q, { end, days: DAYS, runs, cachedRuns: runs });
      if (t.uncached.failure !== undefined) fail(`${q.name}: ${t.uncached.failure}`);
      cachedAll.push(...t.cached);
      const b = await measureBaseline(client, q, { end, days: DAYS, runs: ctx.analyticsBaselineRuns });
      const wrong = await crossCheck(client, q, t.uncached.first, b.first, { end, days: DAYS });
      if (wrong !== undefined) fail(`${q.name}: wrong answer: ${wrong}`);
      const target = q.filtered ? TARGET_FILTERED_MS : TARGET_UNFILTERED_MS;
      const scope = `${q.name} (${events} events; Tally ${runs} runs, baseline ${b.samples.length})`;
      const base = {
        scenario: `${SCENARIO}, uncached`,
        unit: 'ms',
        baselineName: 'one SQL over the raw events',
      };
      const p = (s: number[], pct: number) => (s.length === 0 ? Number.NaN : round(percentile(s, pct), 1));
      rows.push(
        { ...base, metric: `p50, ${scope}`, tally: p(t.uncached.samples, 50), baseline: p(b.samples, 50) },
        {
          ...base,
          metric: `p99, ${scope}`,
          tally: p(t.uncached.samples, 99),
          baseline: p(b.samples, 99),
          target: `≤ ${target} ms`,
          note: t.uncached.failure ?? wrong,
        },
      );
    }
    rows.push({
      scenario: `${SCENARIO}, cached`,
      metric: `p99 over all ${analyticsQuestions(DAYS).length} questions, the same request again (${cachedAll.length} requests, fetch)`,
      tally: cachedAll.length === 0 ? Number.NaN : round(percentile(cachedAll, 99), 2),
      unit: 'ms',
      target: 'as fast as scenario 6 cached',
    });
    const rssMb = await tally.peakRssMb();
    rows.push({
      scenario: `${SCENARIO}, read model`,
      metric: `peak RSS of \`tally query\` (VmHWM) holding the read model of ${events} events`,
      tally: Math.round(rssMb),
      unit: 'MB',
    });
    rows.push(...(await after(tally.url)));
    return { rows, rssMb };
  } finally {
    await tally.stop();
  }
}

/** Bytes per stored event: raw events with their indexes against every rollup and read model. */
function storageRows(sizes: TableSize[], queryDirBytes: number, events: number, standIn: boolean): Row[] {
  const raw = sizes.filter((s) => s.table === 'events');
  const ledger = sizes.filter((s) => s.table === 'event_ids');
  const derived = sizes.filter(
    (s) => !['events', 'event_ids'].includes(s.table) && !BOOKKEEPING.has(s.table),
  );
  const sum = (list: TableSize[]) => list.reduce((a, s) => a + s.bytes, 0);
  const perEvent = (bytes: number) => round(bytes / events, 1);
  const list = (l: TableSize[]) => l.map((s) => `${s.table} ${round(s.bytes / 2 ** 20, 1)} MB`).join(', ');
  const files =
    queryDirBytes > 0
      ? `; files in tally query's TALLY_DATA_DIR ${round(queryDirBytes / 2 ** 20, 1)} MB`
      : '';
  const base = { scenario: `${SCENARIO} storage`, unit: 'B/event', baselineName: 'raw events + indexes' };
  return [
    {
      ...base,
      metric: `every rollup and read model (pg_total_relation_size of tally.*${files ? ' + files' : ''})`,
      tally: perEvent(sum(derived) + queryDirBytes),
      baseline: perEvent(sum(raw)),
      target: '≤ 100 % of raw events + indexes',
      note: `${list(derived)}${files}${standIn ? '; pre-merge writer: no sessions, stand-in dimensions' : ''}`,
    },
    {
      ...base,
      metric: 'the dedup ledger (tally.event_ids)',
      tally: perEvent(sum(ledger)),
      baseline: perEvent(sum(raw)),
      note: `raw: ${list(raw)}; bookkeeping not counted: ${list(sizes.filter((s) => BOOKKEEPING.has(s.table)))}`,
    },
  ];
}
