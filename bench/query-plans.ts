/**
 * Prints EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the query layer runs for 30-day questions,
 * as Markdown (the source of src/query/QUERY_PLANS.md). Run after bench/dataset.ts:
 *
 *   node bench/query-plans.ts [--days 30] > plans.md
 *
 * The statements are captured from StatsStore itself (its pool is wrapped so every query runs
 * under EXPLAIN), so the plans cannot drift from the code.
 */
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.ts';
import { piecesFor } from '../src/query/range-pieces.ts';
import { resolveRange, StatsService } from '../src/query/stats-service.ts';
import { DAY as DAY_LEVEL, HOUR, MINUTE as MINUTE_LEVEL } from '../src/store/levels.ts';
import { StatsStore } from '../src/store/stats-store.ts';
import { openDatabase } from '../src/store/database.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;
const { values } = parseArgs({ options: { days: { type: 'string', default: '30' } } });
const days = Number(values.days);

const config = loadConfig({ TALLY_DATA_DIR: '.tally/bench-query', TALLY_LOG_LEVEL: 'warn', ...process.env });
const database = await openDatabase(config.database, {
  poolSize: 2,
  applicationName: 'tally-query-plans',
  logger: pino({ level: 'warn' }),
});

/** A pool whose queries run one at a time under EXPLAIN ANALYZE and whose plans are printed. */
function explaining(pool: pg.Pool, title: string): pg.Pool {
  let n = 0;
  const query = async (sql: string, params: unknown[]) => {
    const { rows } = await pool.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql}`,
      params,
    );
    const shown = params.map((p) =>
      Array.isArray(p) && p.length > 6
        ? `[${p.slice(0, 3).join(', ')}, … ${p.length} items]`
        : JSON.stringify(p),
    );
    process.stdout.write(
      `#### ${title}, statement ${++n}\n\n\`\`\`sql\n${sql.replace(/\s+/g, ' ').trim()}\n-- params: ${shown.join(' | ')}\n\`\`\`\n\n\`\`\`\n${rows.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\`\n\n`,
    );
    return { rows: [] };
  };
  return { query } as unknown as pg.Pool;
}

try {
  const to = Math.floor(Date.now() / MINUTE) * MINUTE - 7 * MINUTE; // ragged on purpose
  const range = resolveRange({ from: String(to - days * DAY), to: String(to) });
  const label = `${days} days to ${new Date(to).toISOString()}`;
  const service = (title: string) => new StatsService(new StatsStore(explaining(database.pool, title)));
  process.stdout.write(`### Range: ${label} (not aligned to hours or days)\n\n`);
  // The summary's three statements, one at a time (the service runs them in parallel).
  const s = new StatsStore(explaining(database.pool, 'summary'));
  const pieces = piecesFor(range.from, range.to, 0);
  process.stdout.write(
    `Pieces (level ${MINUTE_LEVEL.level} minute, ${HOUR.level} hour, ${DAY_LEVEL.level} day): ${pieces.map((p) => `L${p.level} ${new Date(p.from).toISOString()}→${new Date(p.to).toISOString()}`).join(', ')}\n\n`,
  );
  await s.eventCounts('default', pieces, {});
  await s.eventCounts('default', pieces, { type: 'page_view' });
  await s.uniqueUsers('default', pieces);
  await service('timeseries events per hour').timeseries('default', range, {
    metric: 'events',
    interval: 'hour',
    tz: 'UTC',
  });
  await service('timeseries unique_users per day (UTC)').timeseries('default', range, {
    metric: 'unique_users',
    interval: 'day',
    tz: 'UTC',
  });
  await service('timeseries page_views per day (Asia/Kolkata)').timeseries('default', range, {
    metric: 'page_views',
    interval: 'day',
    tz: 'Asia/Kolkata',
  });
  await service('top pages').topPages('default', range, 10);
} finally {
  await database.stop();
}
