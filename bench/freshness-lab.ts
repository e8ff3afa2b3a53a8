/**
 * A lab script for scenario 5 in embedded mode (docs/benchmarks.md, "Scenario 5 at full size"):
 * scenario 4's load into a new `tally start` (bench/scenarios/embedded.ts's endToEndRate), then
 * scenario 5's freshness probes under half that rate, with what the read model did meanwhile,
 * read from Tally's debug log: its catch-ups (users, events re-read, ms), its full loads and the
 * catch-ups it gave up for a reload; and how many questions the model and PostgreSQL answered.
 *
 *   node bench/freshness-lab.ts [events, default 20000] [probes, default 50]
 *
 * The environment reaches Tally: `TALLY_READ_MODEL=off node bench/freshness-lab.ts` is the other
 * side of an A/B. Run the two sides interleaved, a few rounds each.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort } from '../src/util/free-port.ts';
import { startService } from './lib/processes.ts';
import { percentile, round } from './lib/stats.ts';
import type { BenchContext } from './run.ts';
import { endToEndRate, freshness } from './scenarios/embedded.ts';

const events = Number(process.argv[2] ?? 20_000);
const probes = Number(process.argv[3] ?? 50);
const dir = await mkdtemp(join(tmpdir(), 'tally-freshness-lab-'));
// startService keeps each process's log there.
process.env.BENCH_LOG_DIR = dir;
const port = await findFreePort();
const tally = await startService({
  name: 'tally start',
  args: ['start'],
  env: {
    SERVER_PORT: String(port),
    TALLY_GRPC_PORT: '0',
    TALLY_DATA_DIR: join(dir, 'embedded'),
    TALLY_LOG_LEVEL: 'debug',
  },
  port,
});
try {
  const ctx = { connections: 50, probes } as BenchContext;
  const rate = await endToEndRate(tally.url, tally.url, ctx, events, Date.parse('2020-01-01T00:00:00Z'));
  const fresh = await freshness(tally.url, tally.url, ctx, rate / 2, Date.parse('2021-01-01T00:00:00Z'));
  const ms = fresh.latencies;
  console.log(
    `read model ${process.env.TALLY_READ_MODEL ?? 'columnar'}; scenario 4: ${Math.round(rate)} events/s; ` +
      `freshness over ${ms.length} probes: p50 ${round(percentile(ms, 50))} ms, p99 ${round(percentile(ms, 99))} ms` +
      (fresh.failure === undefined ? '' : ` (${fresh.failure})`),
  );
  // Who answered the questions over the raw rows (the probes' summaries among them).
  const metrics = await (await fetch(`${tally.url}/metrics`)).text();
  const answers = [...metrics.matchAll(/^tally_read_model_answers_total\{source="(\w+)"\} (\d+)/gm)];
  console.log(
    `answered by: ${answers.map(([, source, n]) => `${source} ${n}`).join(', ') || 'none counted'}`,
  );
  await tally.stop();
  const log = await readFile(join(dir, `tally-start-${tally.child.pid}.log`), 'utf8');
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; ms?: number; users?: number; events?: number });
  const show = (msg: string, counted: 'users' | 'events') => {
    const found = lines.filter((l) => l.msg === msg);
    if (found.length === 0) return `${msg}: none`;
    const of = (k: 'ms' | 'users' | 'events') => found.map((l) => l[k] ?? 0);
    const range = (k: 'ms' | 'users' | 'events') => `${percentile(of(k), 50)} / ${Math.max(...of(k))}`;
    return `${msg}: ${found.length}, ms p50 / max ${range('ms')}, ${counted} p50 / max ${range(counted)}`;
  };
  console.log(show('read model caught up', 'users'));
  console.log(show('read model loaded', 'events'));
  const behind = lines.filter((l) => l.msg === 'read model behind').length;
  console.log(`read model behind (a catch-up that would re-read too much, or a gap in the feed): ${behind}`);
} finally {
  await tally.stop();
  await rm(dir, { recursive: true, force: true });
}
