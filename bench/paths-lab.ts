import { parseArgs } from 'node:util';
import { ColumnarBuilder } from '../src/query/columnar/builder.ts';
import type { ColumnarModel } from '../src/query/columnar/model.ts';
import { paths, type PathsQuestion } from '../src/query/product/paths.ts';
import { rangeOf } from './lib/analytics-measure.ts';
import { percentile, round } from './lib/stats.ts';
import { loadWebModel } from './lib/web-model.ts';
import { WebDataset } from './web-dataset.ts';

/**
 * The paths engine's workbench (not part of `npm run bench`): builds bench scenario 10's web
 * data set in-process (as bench/columnar-lab.ts does) and asks scenario 10's path question
 * (next pages after '/', depth 3, top 10, 30 days) over ragged ranges, printing each run's wall
 * and CPU time. With --before FILE (a copy of an older paths.ts exporting `paths`), the two
 * engines run interleaved and their answers must be equal.
 *
 *   node --max-old-space-size=8000 bench/paths-lab.ts [--events 2000000] [--runs 20] [--before file]
 */
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '2000000' },
    runs: { type: 'string', default: '20' },
    before: { type: 'string' },
  },
});
const DAYS = 30;
const END = Date.UTC(2026, 10, 1);
const log = (line: string) => process.stdout.write(`${line}\n`);

type Engine = (models: readonly ColumnarModel[], q: PathsQuestion) => unknown;

/** Events and their visits cut by the 30-min gap (exact on this data set: see bench/lib/web-model.ts). */
function buildModel(dataset: WebDataset): ColumnarModel {
  const builder = new ColumnarBuilder();
  loadWebModel(dataset, builder);
  return builder.build();
}

function question(i: number): PathsQuestion {
  return {
    ...rangeOf(END - 7, DAYS, i),
    bots: 'exclude',
    filters: [],
    by: 'page',
    anchor: '/',
    direction: 'next',
    depth: 3,
    limit: 10,
  };
}

/** Wall and CPU ms of one answer. */
function timed(
  engine: Engine,
  model: ColumnarModel,
  i: number,
): { wall: number; cpu: number; answer: unknown } {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const answer = engine([model], question(i));
  const wall = performance.now() - start;
  const c = process.cpuUsage(cpu0);
  return { wall, cpu: (c.user + c.system) / 1000, answer };
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const model = buildModel(new WebDataset({ events: Number(values.events), end: END, days: DAYS }));
  log(
    `${model.events.count} events, ${model.visits.count} visits; built in ${round((performance.now() - t0) / 1000)} s`,
  );
  const engines: [string, Engine][] = [['now', paths]];
  if (values.before !== undefined) {
    const before = (await import(values.before)) as { paths: Engine };
    engines.unshift(['before', before.paths]);
  }
  const runs = Number(values.runs);
  const samples = engines.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (const [, engine] of engines) engine([model], question(runs + 1)); // JIT warm-up
  for (let i = 0; i < runs; i++) {
    const answers: string[] = [];
    const cells: string[] = [];
    engines.forEach(([name, engine], e) => {
      const r = timed(engine, model, i);
      samples[e].wall.push(r.wall);
      samples[e].cpu.push(r.cpu);
      answers.push(JSON.stringify(r.answer));
      cells.push(`${name} ${round(r.wall)} ms (cpu ${round(r.cpu)})`);
    });
    if (answers.some((a) => a !== answers[0])) throw new Error(`run ${i}: the engines answer differently`);
    log(`run ${i}: ${cells.join(', ')}`);
  }
  engines.forEach(([name], e) => {
    const s = samples[e];
    log(
      `${name}: wall p50 ${round(percentile(s.wall, 50))} p99 ${round(percentile(s.wall, 99))} ms; cpu p50 ${round(percentile(s.cpu, 50))} ms`,
    );
  });
}

await main();
