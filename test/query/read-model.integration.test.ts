import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { BreakdownService, readBreakdown } from '../../src/query/breakdown-service.ts';
import { parseFilters } from '../../src/query/filters.ts';
import { ScopedStats, type Selection } from '../../src/query/scoped-stats.ts';
import { StatsService } from '../../src/query/stats-service.ts';
import { AnalyticsStore } from '../../src/store/analytics-store.ts';
import { readSnapshot } from '../../src/store/read-snapshot.ts';
import { StatsStore } from '../../src/store/stats-store.ts';
import type pg from 'pg';
import type { ReadModel } from '../../src/query/read-model.ts';
import { postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { waitFor } from '../helpers/poll.ts';

/**
 * The columnar read model wired into the service (src/query/read-model.ts): after a full load,
 * after catch-ups through the change feed (late events that extend and merge visits, a
 * duplicate, new users), and after a change the feed does not describe (a rebuild), every answer
 * it gives equals the PostgreSQL scan engine's over the same rows.
 */

const MINUTE = 60_000;
const T0 = Date.UTC(2013, 4, 6, 10);
const PHONE =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';
const DESKTOP =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';

interface Sent {
  id: string;
  user: string;
  min: number;
  path?: string;
  type?: string;
  ua?: string;
  country?: string;
  plan?: string;
}

const event = (e: Sent) => ({
  event_id: e.id,
  type: e.type ?? 'page_view',
  user_id: e.user,
  timestamp: new Date(T0 + e.min * MINUTE).toISOString(),
  page_url: `https://example.com${e.path ?? '/'}${e.min % 3 === 0 ? '?utm_source=newsletter&utm_medium=email' : ''}`,
  user_agent: e.ua ?? DESKTOP,
  country: e.country ?? 'FR',
  ...(e.plan === undefined ? {} : { properties: { plan: e.plan } }),
});

function services(pool: pg.Pool, model: ReadModel | undefined) {
  const scoped = new ScopedStats(new StatsService(new StatsStore(pool)), {
    raw: { stored: true, cutoff: () => Number.NEGATIVE_INFINITY },
    snapshot: (read) =>
      readSnapshot(pool, (db) =>
        read({ stats: new StatsService(new StatsStore(db)), store: new AnalyticsStore(db) }),
      ),
    model,
  });
  return { scoped, breakdown: new BreakdownService(scoped) };
}

const range = { from: T0 - 60 * MINUTE, to: T0 + 6 * 60 * MINUTE };
const ALL = 'visitors,visits,page_views,events,bounce_rate,visit_duration,views_per_visit';
const SELECTIONS: Selection[] = [
  { filters: [], bots: 'exclude' },
  { filters: parseFilters(['device==mobile']), bots: 'exclude' },
  { filters: parseFilters(['utm_source==newsletter', 'page~=/Blog']), bots: 'include' },
  { filters: parseFilters(['country!=DE', 'property:plan==pro|free']), bots: 'exclude' },
];
const DIMENSIONS = [
  'page',
  'entry_page',
  'exit_page',
  'channel',
  'device',
  'browser',
  'country',
  'property:plan',
];

/** Every question of the list, answered by both. */
async function compare(pool: pg.Pool, model: ReadModel, label: string): Promise<void> {
  const viaModel = services(pool, model);
  const viaPg = services(pool, undefined);
  for (const sel of SELECTIONS) {
    const what = `${label} ${JSON.stringify(sel.filters)} ${sel.bots}`;
    assert.deepEqual(
      await viaModel.scoped.summary('default', range, sel),
      await viaPg.scoped.summary('default', range, sel),
      `summary ${what}`,
    );
    for (const dimension of DIMENSIONS) {
      const q = readBreakdown({ dimension, metrics: ALL, limit: 100, page: 1 });
      assert.deepEqual(
        await viaModel.breakdown.breakdown('default', range, sel, q),
        await viaPg.breakdown.breakdown('default', range, sel, q),
        `breakdown ${dimension} ${what}`,
      );
    }
    for (const metric of ['visitors', 'visits', 'events', 'page_views'] as const) {
      for (const [interval, tz] of [
        ['hour', 'Asia/Kolkata'],
        ['day', 'UTC'],
      ] as const) {
        const question = { metric, interval, tz };
        assert.deepEqual(
          await viaModel.scoped.timeseries('default', range, sel, question),
          await viaPg.scoped.timeseries('default', range, sel, question),
          `timeseries ${metric} ${interval} ${what}`,
        );
      }
    }
  }
}

async function send(url: string, events: Sent[]): Promise<void> {
  const res = await postJson(`${url}/v1/events`, events.map(event));
  assert.equal(res.status, 202, JSON.stringify(res.body));
}

test('the read model answers as PostgreSQL does after a load, after catch-ups and after a rebuild', async (t) => {
  const tally = await startTestTally(t);
  const model = tally.model;
  assert.ok(model !== undefined, 'the model is on by default');
  const pool = tally.database.pool;
  // Two visits for u1 (gap 50 min), one long one for u2, a phone user, plans.
  await send(tally.url, [
    { id: 'a1', user: 'u1', min: 0, path: '/blog/a', plan: 'pro' },
    { id: 'a2', user: 'u1', min: 10, path: '/pricing' },
    { id: 'a3', user: 'u1', min: 60, path: '/blog/b' },
    { id: 'a4', user: 'u2', min: 5, path: '/', ua: PHONE, country: 'DE' },
    { id: 'a5', user: 'u2', min: 25, path: '/blog/a', ua: PHONE, country: 'DE', type: 'click' },
    { id: 'a6', user: 'u3', min: 100, path: '/', ua: PHONE, plan: 'free' },
    { id: 'a7', user: 'u4', min: 200, path: '/pricing' },
  ]);
  assert.equal(await model.ready('default'), true, 'loaded');
  await compare(pool, model, 'after the load');

  // A late event merging u1's two visits, one extending u2's, a duplicate, a new user.
  await send(tally.url, [
    { id: 'b1', user: 'u1', min: 35, path: '/blog/c' },
    { id: 'b2', user: 'u2', min: 50, path: '/pricing', ua: PHONE, country: 'DE' },
    { id: 'a3', user: 'u1', min: 60, path: '/blog/b' },
    { id: 'b3', user: 'u5', min: 300, path: '/blog/a', plan: 'pro' },
  ]);
  // However long the catch-up takes (a question waits a bounded time: read-model-waits test).
  const layers = await model.at('default', Number.POSITIVE_INFINITY);
  assert.ok(layers !== undefined, 'caught up through the feed, without a reload');
  assert.ok(layers.count > 1, 'into a delta layer');
  await compare(pool, model, 'after a catch-up');

  // Only the duplicate: a version with an empty feed row.
  await send(tally.url, [{ id: 'a1', user: 'u1', min: 0, path: '/blog/a', plan: 'pro' }]);
  assert.ok(
    (await model.at('default', Number.POSITIVE_INFINITY)) !== undefined,
    'an empty feed row is a catch-up too',
  );
  await compare(pool, model, 'after a duplicate');

  // A change the feed does not describe (as an operator's repair would be): the model reloads.
  const before = await model.at('default');
  await pool.query(`UPDATE tally.events SET country = 'US' WHERE project = 'default' AND user_id = 'u4'`);
  // `tally model rebuild` (the running Tally's embedded PostgreSQL, found by its data directory).
  const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
  const env = { ...process.env, TALLY_DATA_DIR: tally.dataDir, TALLY_LOG_LEVEL: 'silent' };
  const cli = await promisify(execFile)(
    process.execPath,
    [main, 'model', 'rebuild', '--project', 'default'],
    {
      env,
    },
  );
  assert.equal(cli.stdout, 'asked every query process to reload project default\n');
  const byCountry = readBreakdown({ dimension: 'country', metrics: 'visitors', limit: 10, page: 1 });
  const viaModel = services(pool, model);
  await waitFor('the model to reload after a rebuild', async () => {
    const layers = await model.at('default');
    if (layers === undefined || layers === before) return false;
    const answer = await viaModel.breakdown.breakdown('default', range, SELECTIONS[0], byCountry);
    return answer.results.some((r) => r.value === 'US');
  });
  await compare(pool, model, 'after a rebuild');
  const answered = await tally.metrics.registry.getSingleMetricAsString('tally_read_model_answers_total');
  assert.match(answered, /source="model"} [1-9]/);
});
