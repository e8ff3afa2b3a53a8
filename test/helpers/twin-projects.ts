import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { normalizeEvent } from '../../src/event/normalize.ts';
import type { TallyEvent } from '../../src/event/types.ts';
import { BreakdownService, readBreakdown } from '../../src/query/breakdown-service.ts';
import { parseFilters } from '../../src/query/filters.ts';
import type { ReadModel } from '../../src/query/read-model.ts';
import { ScopedStats, type Selection } from '../../src/query/scoped-stats.ts';
import { StatsService, type Range, type SeriesMetric } from '../../src/query/stats-service.ts';
import type { Interval } from '../../src/query/time-buckets.ts';
import { AnalyticsStore } from '../../src/store/analytics-store.ts';
import type { BatchWriter } from '../../src/store/batch-writer.ts';
import { readSnapshot } from '../../src/store/read-snapshot.ts';
import { StatsStore } from '../../src/store/stats-store.ts';
import { startTestPostgres } from './kafka-process.ts';
import { storedVisits } from './sessionizer.ts';
import { storedState } from './stored-state.ts';
import type { Generated } from './web-traffic.ts';

/**
 * The oracle of issue 22 ("as if never sent"): the same traffic written into two projects, one
 * with every user and its twin without the user to delete; after the deletion the first must
 * store, and answer, exactly what the twin does.
 */

/** A fresh PostgreSQL and a pool of `max` connections (the writer's and the test's). */
export async function twinDatabase(t: TestContext, max = 4): Promise<pg.Pool> {
  const db = await startTestPostgres(t);
  const pool = new pg.Pool({ connectionString: db.connectionString, max });
  pool.on('error', () => undefined);
  t.after(() => pool.end());
  return pool;
}

/** Request bodies as the HTTP intake would pass them to the writer, for `project`. */
export function eventsOf(
  bodies: readonly Record<string, unknown>[],
  project: string,
  now: number,
): TallyEvent[] {
  return bodies.map((body) => {
    const r = normalizeEvent(body, { project, receivedAt: now, maxFutureSkewMs: 3_600_000 });
    assert.ok(r.ok, JSON.stringify(r));
    return r.event;
  });
}

/** Writes `events` through the real batch path, in consecutive batches of 1..`maxBatch`. */
export async function writeAll(
  writer: BatchWriter,
  events: readonly TallyEvent[],
  random: () => number,
  maxBatch: number,
): Promise<void> {
  for (let i = 0; i < events.length;) {
    const size = 1 + Math.floor(random() * maxBatch);
    await writer.write({ events: events.slice(i, i + size) });
    i += size;
  }
}

/**
 * Everything stored of `project` that a user deletion must make equal to the twin's: the rollups
 * (users decoded to ids), the raw rows, the dedup keys, the visits (without the project name) and
 * how many rows hold the user sets.
 */
export async function projectState(pool: pg.Pool, project: string) {
  const visits = (await storedVisits(pool, project)).map(({ project: _p, ...v }) => v);
  // The user sets' rows themselves: an emptied minute or bit string is invisible in `users`.
  const { rows } = await pool.query<{ minutes: number; bits: number }>(
    `SELECT (SELECT count(*)::int FROM tally.rollup_minute_users WHERE project = $1) AS minutes,
            (SELECT count(*)::int FROM tally.rollup_user_bits WHERE project = $1) AS bits`,
    [project],
  );
  return { ...(await storedState(pool, project)), visits, userSetRows: rows[0] };
}

const BREAKDOWNS = ['page', 'country', 'browser', 'event_type', 'entry_page', 'channel', 'utm_source'];
const SERIES: SeriesMetric[] = ['events', 'page_views', 'unique_users', 'visitors', 'visits'];
const INTERVALS: Interval[] = ['minute', 'hour', 'day'];

/**
 * Every stats answer of `project` over `range`: the rollup answers (no filter, bots excluded), the
 * scans (filters, bots), visits, breakdowns, as the REST routes compute them (query-layer.ts
 * wiring, without the cache; with the columnar read model when given).
 */
export async function everyAnswer(pool: pg.Pool, project: string, range: Range, model?: ReadModel) {
  const scoped = new ScopedStats(new StatsService(new StatsStore(pool)), {
    raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
    ...(model === undefined ? {} : { model }),
    snapshot: (read) =>
      readSnapshot(pool, (db) =>
        read({ stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) }),
      ),
  });
  const breakdown = new BreakdownService(scoped);
  const selections: Selection[] = [
    { filters: [], bots: 'exclude' },
    { filters: [], bots: 'include' },
    { filters: parseFilters(['country==US|DE']), bots: 'exclude' },
    { filters: parseFilters(['page!=/']), bots: 'only' },
  ];
  const answers: Record<string, unknown> = {};
  for (const [i, sel] of selections.entries()) {
    answers[`summary ${i}`] = await scoped.summary(project, range, sel);
    answers[`top pages ${i}`] = await scoped.topPages(project, range, sel, 1000);
    answers[`event types ${i}`] = await scoped.eventTypes(project, range, sel, 1000);
    for (const metric of SERIES) {
      for (const interval of INTERVALS) {
        answers[`timeseries ${metric} ${interval} ${i}`] = await scoped.timeseries(project, range, sel, {
          metric,
          interval,
          tz: 'UTC',
        });
      }
    }
    for (const dimension of BREAKDOWNS) {
      const q = readBreakdown({
        dimension,
        metrics: 'visitors,visits,page_views,events,bounce_rate',
        limit: 1000,
        page: 1,
      });
      answers[`breakdown ${dimension} ${i}`] = await breakdown.breakdown(project, range, sel, q);
    }
  }
  answers['page views of /pricing'] = await scoped.timeseries(project, range, selections[0], {
    metric: 'page_views',
    interval: 'hour',
    tz: 'UTC',
    pageUrl: 'https://shop.example/pricing',
  });
  answers['clicks'] = await scoped.timeseries(project, range, selections[0], {
    metric: 'events',
    interval: 'minute',
    tz: 'UTC',
    eventType: 'click',
  });
  return answers;
}

/** The user with the most late events: the one whose deletion touches most visits and rows. */
export function busiest(all: readonly Generated[]): string {
  const late = new Map<string, number>();
  for (const g of all) if (g.late) late.set(g.event.user_id, (late.get(g.event.user_id) ?? 0) + 1);
  return [...late].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0][0];
}

/** What is left of `user` in `project` outside the rows projectState compares: its number, visits, change-feed rows. */
export async function userTraces(pool: pg.Pool, project: string, user: string) {
  const { rows } = await pool.query<{ numbers: number; visits: number; feed: number }>(
    `SELECT (SELECT count(*)::int FROM tally.user_numbers WHERE project = $1 AND user_id = $2) AS numbers,
            (SELECT count(*)::int FROM tally.sessions WHERE project = $1 AND user_id = $2) AS visits,
            (SELECT count(*)::int FROM tally.model_changes WHERE project = $1 AND $2 = ANY (user_ids)) AS feed`,
    [project, user],
  );
  return rows[0];
}

/** The project's data version (0 before its first). */
export async function dataVersion(pool: pg.Pool, project: string): Promise<number> {
  const { rows } = await pool.query<{ version: string }>(
    'SELECT version FROM tally.data_versions WHERE project = $1',
    [project],
  );
  return rows.length === 0 ? 0 : Number(rows[0].version);
}
