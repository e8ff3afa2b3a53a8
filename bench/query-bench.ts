/**
 * Query latency on a large data set (fill it first with bench/dataset.ts):
 *
 *   node bench/query-bench.ts [--iterations 200] [--days 30]
 *
 * Starts the query role (`tally query`) in this process on free ports, against DATABASE_URL /
 * DB_* or the embedded PostgreSQL in TALLY_DATA_DIR (default .tally/bench-query), with Redis when
 * REDIS_URL / REDIS_ADDR / REDIS_HOST is set, else the in-process cache. Then asks each question
 * over REST (keep-alive HTTP, one request at a time):
 *   uncached: every request's range ends one minute earlier than the previous one's, so each is
 *             a new cache key and a real PostgreSQL query over a ragged (not day-aligned) range;
 *   cached:   the same request again and again after one warm-up.
 * Prints p50/p99/max in milliseconds, measured at the client (so HTTP is included).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.ts';
import { startQueryRole } from '../src/cli/query-role.ts';
import { percentile, round } from './lib/stats.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '200' },
    days: { type: 'string', default: '30' },
  },
});
const iterations = Number(values.iterations);
const days = Number(values.days);

const config = loadConfig({
  TALLY_DATA_DIR: '.tally/bench-query',
  TALLY_LOG_LEVEL: 'warn',
  ...process.env,
  TALLY_QUERY_PORT: '0',
  TALLY_GRPC_PORT: '0',
});
const role = await startQueryRole(config, pino({ level: 'warn' }));

interface Question {
  name: string;
  path: string;
  params: Record<string, string>;
}

const QUESTIONS: Question[] = [
  { name: `summary, ${days} days`, path: '/v1/stats/summary', params: {} },
  {
    name: `timeseries events/hour, ${days} days`,
    path: '/v1/stats/timeseries',
    params: { metric: 'events', interval: 'hour' },
  },
  {
    name: `timeseries page_views/day Asia/Kolkata, ${days} days`,
    path: '/v1/stats/timeseries',
    params: { metric: 'page_views', interval: 'day', tz: 'Asia/Kolkata' },
  },
  {
    name: `timeseries unique_users/day, ${days} days`,
    path: '/v1/stats/timeseries',
    params: { metric: 'unique_users', interval: 'day' },
  },
  { name: `top-pages, ${days} days`, path: '/v1/stats/top-pages', params: { limit: '10' } },
];

function url(q: Question, to: number): string {
  const u = new URL(q.path, role.url);
  u.search = new URLSearchParams({
    ...q.params,
    from: new Date(to - days * DAY).toISOString(),
    to: new Date(to).toISOString(),
  }).toString();
  return u.toString();
}

async function timed(target: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(target);
  const body = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`${target}: ${res.status} ${body}`);
  return ms;
}

function line(name: string, mode: string, samples: number[]): string {
  const cols = [percentile(samples, 50), percentile(samples, 99), Math.max(...samples)].map((v) =>
    String(round(v, 2)).padStart(8),
  );
  return `${name.padEnd(52)} ${mode.padEnd(9)} ${cols.join(' ')}`;
}

try {
  const now = Math.floor(Date.now() / MINUTE) * MINUTE;
  process.stdout.write(
    `query latency over REST, ${iterations} requests each, cache ${role.cacheKind}; ${role.database.description}\n`,
  );
  process.stdout.write(`${'question'.padEnd(52)} ${'mode'.padEnd(9)}   p50 ms   p99 ms   max ms\n`);
  for (const q of QUESTIONS) {
    // Warm the connection and PostgreSQL's buffers once for this question (not measured).
    await timed(url(q, now - 100_000 * MINUTE));
    const uncached: number[] = [];
    for (let i = 1; i <= iterations; i++) uncached.push(await timed(url(q, now - i * MINUTE)));
    const cached: number[] = [];
    const same = url(q, now);
    await timed(same);
    for (let i = 0; i < iterations; i++) cached.push(await timed(same));
    process.stdout.write(`${line(q.name, 'uncached', uncached)}\n${line(q.name, 'cached', cached)}\n`);
  }
} finally {
  await role.stop();
}
