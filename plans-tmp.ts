import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { pino } from 'pino';
import { openDatabase } from './src/store/database.ts';
import { RawPartitions } from './src/store/partitions.ts';
import { AnalyticsStore, type Scope } from './src/store/analytics-store.ts';
import { parseFilters } from './src/query/filters.ts';

const DAY = 86_400_000;
const START = Date.UTC(2025, 0, 1);
const dir = await mkdtemp(join(tmpdir(), 'plans-'));
const db = await openDatabase({ kind: 'embedded', dataDir: dir } as never, { poolSize: 3, applicationName: 'plans', logger: pino({ level: 'silent' }) });
const pool = db.pool;
try {
  await new RawPartitions(pool, undefined).ensure(Array.from({ length: 8 }, (_, i) => START + i * DAY));
  const N = Number(process.env.N ?? 300000);
  await pool.query(`
    INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at, page_url, path, hostname, channel,
       referrer_host, utm_source, browser, os, device, country, is_bot, properties)
    SELECT 'default', 'e' || i, CASE WHEN r1 < 0.7 THEN 'page_view' WHEN r1 < 0.9 THEN 'click' ELSE 'signup' END,
       'u' || floor(power(random(), 2) * $2)::int, to_timestamp($3 / 1000.0 + random() * 7 * 86400), now(),
       'https://example.com/p' || floor(power(random(), 3) * 50)::int, '/p' || floor(power(random(), 3) * 50)::int,
       'example.com', (ARRAY['Direct','Email','Organic Search','Referral','Organic Social'])[1 + floor(random() * 5)::int],
       (ARRAY[NULL,'google.com','t.co'])[1 + floor(random() * 3)::int], (ARRAY[NULL,NULL,'newsletter'])[1 + floor(random() * 3)::int],
       (ARRAY['Chrome','Firefox','Safari'])[1 + floor(random() * 3)::int], (ARRAY['Windows','iOS','Android'])[1 + floor(random() * 3)::int],
       (ARRAY['desktop','mobile','tablet'])[1 + floor(random() * 3)::int], (ARRAY['FR','US','DE','GB'])[1 + floor(random() * 4)::int],
       random() < 0.03, jsonb_build_object('plan', (ARRAY['pro','free'])[1 + floor(random() * 2)::int])
    FROM (SELECT i, random() AS r1 FROM generate_series(1, $1) i) g`, [N, N / 10, START]);
  await pool.query(`
    INSERT INTO tally.sessions
    SELECT project, user_id, '', min(ts), max(ts), count(*), count(*) FILTER (WHERE type = 'page_view'),
      (array_agg(path ORDER BY ts) FILTER (WHERE type = 'page_view'))[1], (array_agg(path ORDER BY ts DESC) FILTER (WHERE type = 'page_view'))[1],
      min(hostname), min(referrer_host), min(channel), min(utm_source), NULL, NULL, NULL, NULL, min(browser), min(os), min(device), min(country), bool_or(is_bot)
    FROM (SELECT *, sum(new) OVER (PARTITION BY user_id ORDER BY ts) AS k FROM (
      SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) <= interval '30 minutes' THEN 0 ELSE 1 END AS new FROM tally.events) a) b
    GROUP BY project, user_id, k`);
  await pool.query('ANALYZE tally.events; ANALYZE tally.sessions');
  const { rows: [c] } = await pool.query(`SELECT (SELECT count(*) FROM tally.events) e, (SELECT count(*) FROM tally.sessions) s, (SELECT count(DISTINCT user_id) FROM tally.events) u`);
  console.log(`data: ${c.e} events, ${c.s} visits, ${c.u} users over 7 days`);
  const spy = { query: async (sql: string, params: unknown[]) => {
    const { rows } = await pool.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ${sql}`, params);
    console.log(rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n'));
    return { rows: [] };
  } } as unknown as pg.Pool;
  const store = new AnalyticsStore(spy);
  const scope = (filters: string[]): Scope => ({ project: 'default', from: START, to: START + 7 * DAY, filters: parseFilters(filters), bots: 'exclude' });
  const page = { kind: 'dimension', dimension: { kind: 'event', name: 'page' } } as const;
  if (process.env.ONLY !== '6') { console.log('\n### 1. breakdown by page, no filter: events side'); await store.eventGroups(scope([]), page);
  console.log('\n### 2. breakdown by page, no filter: visits side'); await store.visitGroups(scope([]), page);
  console.log('\n### 3. breakdown by page, channel==Email and device==mobile: events side'); await store.eventGroups(scope(['channel==Email', 'device==mobile']), page);
  console.log('\n### 4. same: visits side'); await store.visitGroups(scope(['channel==Email', 'device==mobile']), page);
  console.log('\n### 5. summary visits, no filter'); await store.visitGroups(scope([]), { kind: 'none' });
  } console.log('\n### 6. timeseries visitors per day, utm_source==newsletter'); await store.eventGroups(scope(['utm_source==newsletter']), { kind: 'buckets', starts: Array.from({ length: 7 }, (_, i) => START + i * DAY) });
} finally {
  await db.stop();
  await rm(dir, { recursive: true, force: true });
}
