/**
 * What a full load of the columnar read model costs the event loop of the process that answers
 * (docs/benchmarks.md, "The read model's load off the event loop"): loads project `default` of the
 * database at DATABASE_URL (bench/dataset.ts fills one) through ReadModel's own API, as
 * `tally query` does at start, while a timer every 5 ms measures how late the loop runs it. Prints
 * the load's wall time, the loop's delay (p50/p99/max, ms), this process's CPU time split into
 * its main thread and the rest (worker threads), and the peak RSS.
 *
 *   DATABASE_URL=postgres://… node bench/model-load-lab.ts [rounds, default 1]
 *
 * Not part of `npm run bench` (scenario 6 shows the same thing as cached-answer latency).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { resourceUsage } from 'node:process';
import pino from 'pino';
import { createMetrics } from '../src/observability/metrics.ts';
import { ReadModel } from '../src/query/read-model.ts';
import { createPool } from '../src/store/pool.ts';
import { round } from './lib/stats.ts';

const url = process.env.DATABASE_URL;
if (url === undefined)
  throw new Error('DATABASE_URL names the database to load (bench/dataset.ts fills one)');
const rounds = Number(process.argv[2] ?? 1);
/** The project bench/dataset.ts writes (importing it would run it). */
const BENCH_PROJECT = 'default';
const pool = createPool({ connectionString: url, max: 4, applicationName: 'tally-model-load-lab' }, (err) => {
  throw err;
});
const version = async (project: string) => {
  const { rows } = await pool.query<{ version: number }>(
    'SELECT version FROM tally.data_versions WHERE project = $1',
    [project],
  );
  return rows.length === 0 ? 0 : Number(rows[0].version);
};

for (let r = 1; r <= rounds; r++) {
  const model = new ReadModel({
    pool,
    version,
    cutoff: () => Number.NEGATIVE_INFINITY,
    logger: pino({ level: 'warn' }),
    metrics: createMetrics(),
  });
  const delay = monitorEventLoopDelay({ resolution: 5 });
  const cpu0 = process.cpuUsage();
  const thread0 = threadCpuMs();
  const started = performance.now();
  delay.enable();
  const ready = await model.ready(BENCH_PROJECT);
  delay.disable();
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpu0);
  const mainMs = threadCpuMs() - thread0;
  const processMs = (cpu.user + cpu.system) / 1000;
  await model.stop();
  const line = {
    round: r,
    ready,
    loadMs: Math.round(ms),
    loopDelayMs: {
      p50: round(delay.percentile(50) / 1e6, 1),
      p99: round(delay.percentile(99) / 1e6, 1),
      max: round(delay.max / 1e6, 1),
    },
    cpuMs: { mainThread: Math.round(mainMs), otherThreads: Math.round(processMs - mainMs) },
    peakRssMb: Math.round(resourceUsage().maxRSS / 1024),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
await pool.end();

/** CPU ms of the main thread alone (process.cpuUsage counts every thread). */
function threadCpuMs(): number {
  const { user, system } = process.threadCpuUsage();
  return (user + system) / 1000;
}
