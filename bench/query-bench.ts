/**
 * Query latency on a large data set (fill it first with bench/dataset.ts):
 *
 *   node bench/query-bench.ts [--iterations 200] [--days 30] [--grpc]
 *
 * Starts the query role (`tally query`) in this process on free ports, against DATABASE_URL /
 * DB_* or the embedded PostgreSQL in TALLY_DATA_DIR (default .tally/bench-query), with Redis when
 * REDIS_URL / REDIS_ADDR / REDIS_HOST is set, else the in-process cache. Then asks each question
 * over REST (keep-alive HTTP, one request at a time):
 *   uncached: every request's range ends one minute earlier than the previous one's, so each is
 *             a new cache key and a real PostgreSQL query over a ragged (not day-aligned) range;
 *   cached:   the same request again and again after one warm-up.
 * Prints p50/p99/max in milliseconds, measured at the client (so HTTP is included). With --grpc
 * the same questions go to tally.v1.AnalyticsService through a @grpc/grpc-js client instead.
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.ts';
import { startQueryRole } from '../src/cli/query-role.ts';
import { loadAnalyticsProto } from '../src/query/grpc/service-definition.ts';
import { questionParams, questions, type Question } from './lib/questions.ts';
import { percentile, round } from './lib/stats.ts';

const MINUTE = 60_000;

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '200' },
    days: { type: 'string', default: '30' },
    grpc: { type: 'boolean', default: false },
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

const QUESTIONS = questions(days);
const params = (q: Question, to: number) => questionParams(q, days, to);

type Ask = (q: Question, to: number) => Promise<void>;
type Unary = (request: unknown, callback: (err: grpc.ServiceError | null) => void) => void;

const overRest: Ask = async (q, to) => {
  const u = new URL(q.path, role.url);
  u.search = new URLSearchParams(params(q, to)).toString();
  const res = await fetch(u);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${u.toString()}: ${res.status} ${body}`);
};

function grpcAsk(): { ask: Ask; close: () => void } {
  const loaded = grpc.loadPackageDefinition(loadAnalyticsProto()) as unknown as {
    tally: { v1: { AnalyticsService: grpc.ServiceClientConstructor } };
  };
  const client = new loaded.tally.v1.AnalyticsService(
    `127.0.0.1:${role.grpcPort}`,
    grpc.credentials.createInsecure(),
  );
  const ask: Ask = (q, to) =>
    new Promise((resolve, reject) => {
      const method = (client as unknown as Record<string, Unary>)[q.rpc];
      method.call(client, { ...params(q, to), limit: Number(q.params.limit ?? 0) }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  return { ask, close: () => client.close() };
}

const transport = values.grpc ? grpcAsk() : { ask: overRest, close: () => undefined };

async function timed(q: Question, to: number): Promise<number> {
  const started = performance.now();
  await transport.ask(q, to);
  return performance.now() - started;
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
    `query latency over ${values.grpc ? 'gRPC' : 'REST'}, ${iterations} requests each, cache ${role.cacheKind}; ${role.database.description}\n`,
  );
  process.stdout.write(`${'question'.padEnd(52)} ${'mode'.padEnd(9)}   p50 ms   p99 ms   max ms\n`);
  for (const q of QUESTIONS) {
    // Warm the connection and PostgreSQL's buffers for this question (not measured): ranges over
    // the same data, a little earlier than the measured ones, so new cache keys.
    for (let k = 1; k <= 3; k++) await timed(q, now - (iterations + k) * MINUTE);
    const uncached: number[] = [];
    for (let i = 1; i <= iterations; i++) uncached.push(await timed(q, now - i * MINUTE));
    const cached: number[] = [];
    await timed(q, now);
    for (let i = 0; i < iterations; i++) cached.push(await timed(q, now));
    process.stdout.write(`${line(q.name, 'uncached', uncached)}\n${line(q.name, 'cached', cached)}\n`);
  }
} finally {
  transport.close();
  await role.stop();
}
