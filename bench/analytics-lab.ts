import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { pino } from 'pino';
import { parseFilters } from '../src/query/filters.ts';
import { BreakdownService, readBreakdown } from '../src/query/breakdown-service.ts';
import { ScopedStats } from '../src/query/scoped-stats.ts';
import { StatsService } from '../src/query/stats-service.ts';
import { AnalyticsStore } from '../src/store/analytics-store.ts';
import { openDatabase } from '../src/store/database.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { readSnapshot } from '../src/store/read-snapshot.ts';
import { StatsStore } from '../src/store/stats-store.ts';
import { loadThroughWriter } from './lib/analytics-load.ts';
import { rangeOf } from './lib/analytics-measure.ts';
import { analyticsQuestions, type AnalyticsQuestion } from './lib/analytics-questions.ts';
import { percentile, round } from './lib/stats.ts';
import { WebDataset } from './web-dataset.ts';

/**
 * The scan engine's workbench (not part of `npm run bench`): loads scenario 8's web data set once
 * into an embedded PostgreSQL kept in `--dir`, then asks its questions of the query services
 * in-process (no HTTP, no cache) and prints p50/p99 per question; `--explain` prints each SQL the
 * engine sent for run 0 with EXPLAIN (ANALYZE, BUFFERS). For measuring a change to the engine in
 * seconds instead of a full scenario run; the figures that count are the scenario's.
 *
 *   node bench/analytics-lab.ts [--dir /tmp/tally-analytics-lab] [--events 1000000] [--runs 10]
 *                               [--only <substring of a question's name>] [--explain]
 */
const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/tally-analytics-lab' },
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '10' },
    only: { type: 'string' },
    explain: { type: 'boolean', default: false },
  },
});
const DAYS = 30;
const MINUTE = 60_000;
const events = Number(values.events);
const runs = Number(values.runs);
const log = (line: string) => process.stdout.write(`${line}\n`);

/** Every statement a query sent, in order (SET LOCAL included), for the EXPLAIN replay. */
let recorded: { sql: string; params: unknown[] }[] = [];
function recording(pool: pg.Pool): pg.Pool {
  const wrap = <T extends { query: (...a: never[]) => unknown }>(target: T): T =>
    new Proxy(target, {
      get(t, prop, receiver) {
        if (prop === 'query')
          return (sql: string, params?: unknown[]) => {
            recorded.push({ sql, params: params ?? [] });
            return (t.query as (s: string, p?: unknown[]) => unknown).call(t, sql, params);
          };
        if (prop === 'connect') return async () => wrap(await (t as unknown as pg.Pool).connect());
        const v = Reflect.get(t, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
  return wrap(pool);
}

const postgres = await startEmbeddedPostgres({ dataDir: values.dir });
const database = await openDatabase(
  { kind: 'external', connectionString: postgres.connectionString },
  { poolSize: 6, applicationName: 'tally-analytics-lab', logger: pino({ level: 'silent' }) },
);
try {
  const endFile = join(values.dir, 'end.json');
  let end: number;
  if (existsSync(endFile)) {
    end = (JSON.parse(await readFile(endFile, 'utf8')) as { end: number }).end;
  } else {
    end = Math.floor(Date.now() / MINUTE) * MINUTE - 60 * MINUTE;
    const dataset = new WebDataset({ events, end, days: DAYS });
    log(`loading ${events} events`);
    const load = await loadThroughWriter(database.pool, dataset, {
      events,
      batchSize: 5000,
      inFlight: 3,
      log,
    });
    log(`loaded in ${round(load.seconds, 1)} s (${Math.round(events / load.seconds)} events/s)`);
    await database.pool.query('VACUUM ANALYZE');
    await writeFile(endFile, JSON.stringify({ end }));
  }
  const pool = recording(database.pool);
  // As src/query/query-layer.ts builds them (raw rows kept, no retention).
  const scoped = new ScopedStats(new StatsService(new StatsStore(pool)), {
    raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
    snapshot: (read) =>
      readSnapshot(pool, (db) =>
        read({ stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) }),
      ),
  });
  const breakdown = new BreakdownService(scoped);
  const ask = async (q: AnalyticsQuestion, from: number, to: number) => {
    const sel = { filters: parseFilters(q.filters), bots: 'exclude' as const };
    const range = { from, to };
    if (q.path === '/v1/stats/summary') return scoped.summary('default', range, sel);
    if (q.path === '/v1/stats/timeseries')
      return scoped.timeseries('default', range, sel, { metric: 'unique_users', interval: 'day', tz: 'UTC' });
    const b = readBreakdown({ dimension: q.params.dimension, metrics: q.params.metrics, limit: 10, page: 1 });
    return breakdown.breakdown('default', range, sel, b);
  };
  for (const q of analyticsQuestions(DAYS)) {
    if (values.only !== undefined && !q.name.includes(values.only)) continue;
    const warm = rangeOf(end, DAYS, runs + 1);
    await ask(q, warm.from, warm.to);
    const samples: number[] = [];
    let first: { sql: string; params: unknown[] }[] = [];
    for (let i = 0; i < runs; i++) {
      const { from, to } = rangeOf(end, DAYS, i);
      recorded = [];
      const started = performance.now();
      await ask(q, from, to);
      samples.push(performance.now() - started);
      if (i === 0) first = recorded;
    }
    log(
      `${q.name}: p50 ${round(percentile(samples, 50), 1)} ms, p99 ${round(percentile(samples, 99), 1)} ms`,
    );
    if (!values.explain) continue;
    const client = await database.pool.connect();
    try {
      for (const s of first) {
        if (!/^\s*(WITH|SELECT)/i.test(s.sql)) continue;
        await client.query('BEGIN');
        for (const set of first.filter((x) => /SET LOCAL/i.test(x.sql))) await client.query(set.sql);
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, BUFFERS) ${s.sql}`,
          s.params,
        );
        await client.query('ROLLBACK');
        log(`\n${s.sql}\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n`);
      }
    } finally {
      client.release();
    }
  }
} finally {
  await database.stop();
  await postgres.stop();
}
