import assert from 'node:assert/strict';
import { test } from 'node:test';
import type pg from 'pg';
import { parseFilters } from '../../src/query/filters.ts';
import { ScopedStats, type Selection } from '../../src/query/scoped-stats.ts';
import { StatsService } from '../../src/query/stats-service.ts';
import { AnalyticsStore } from '../../src/store/analytics-store.ts';
import { StatsStore } from '../../src/store/stats-store.ts';

const DAY = 86_400_000;
const range = { from: Date.UTC(2026, 0, 1), to: Date.UTC(2026, 0, 1) + 2 * DAY };

/**
 * A ScopedStats whose pool and snapshot record the statements each one runs (and answer no rows),
 * the way src/query/query-layer.ts wires the real ones.
 */
function recorded() {
  const log: { on: 'pool' | 'snapshot'; sql: string }[] = [];
  let snapshots = 0;
  const queryable = (on: 'pool' | 'snapshot') =>
    ({
      query: (sql: string | { text: string }) => {
        log.push({ on, sql: typeof sql === 'string' ? sql : sql.text });
        return Promise.resolve({ rows: [] });
      },
    }) as unknown as pg.Pool;
  const scoped = new ScopedStats(new StatsService(new StatsStore(queryable('pool'))), {
    raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
    snapshot: (read) => {
      snapshots += 1;
      const db = queryable('snapshot');
      return read({ stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) });
    },
  });
  return { scoped, log, snapshots: () => snapshots };
}

const filtered: Selection = { filters: parseFilters(['device==mobile']), bots: 'exclude' };
const withBots: Selection = { filters: [], bots: 'include' };

test('timeseries, top pages and event types under filters or bots read in one snapshot each', async () => {
  const questions: [string, (s: ScopedStats, sel: Selection) => Promise<unknown>][] = [
    [
      'timeseries events',
      (s, sel) => s.timeseries('p', range, sel, { metric: 'events', interval: 'day', tz: 'UTC' }),
    ],
    [
      'timeseries visits',
      (s, sel) => s.timeseries('p', range, sel, { metric: 'visits', interval: 'day', tz: 'UTC' }),
    ],
    ['top pages', (s, sel) => s.topPages('p', range, sel, 10)],
    ['event types', (s, sel) => s.eventTypes('p', range, sel, 10)],
  ];
  for (const [name, ask] of questions) {
    for (const sel of [filtered, withBots]) {
      const { scoped, log, snapshots } = recorded();
      await ask(scoped, sel);
      assert.equal(snapshots(), 1, `${name} (${JSON.stringify(sel)}): one snapshot`);
      assert.ok(log.length > 0, `${name}: reads something`);
      assert.deepEqual(
        log.filter((q) => q.on === 'pool'),
        [],
        `${name} (${JSON.stringify(sel)}): no statement outside the snapshot`,
      );
    }
  }
});

test('the same questions without filter and bots read the rollups from the pool, no snapshot', async () => {
  const plain: Selection = { filters: [], bots: 'exclude' };
  const { scoped, log, snapshots } = recorded();
  await scoped.timeseries('p', range, plain, { metric: 'events', interval: 'day', tz: 'UTC' });
  await scoped.topPages('p', range, plain, 10);
  await scoped.eventTypes('p', range, plain, 10);
  assert.equal(snapshots(), 0);
  assert.ok(log.length >= 3 && log.every((q) => q.on === 'pool' && /tally\.rollup_/.test(q.sql)));
});
