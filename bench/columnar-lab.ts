import { availableParallelism, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ColumnarBuilder } from '../src/query/columnar/builder.ts';
import { valuePasses } from '../src/query/columnar/compile-filters.ts';
import { ColumnarEngine, type ColumnarSelection } from '../src/query/columnar/engine.ts';
import { Layers } from '../src/query/columnar/layers.ts';
import { modelBytes, type ColumnarModel } from '../src/query/columnar/model.ts';
import { ScanPool } from '../src/query/columnar/scan-pool.ts';
import { parseDimension, parseFilters, type Filter } from '../src/query/filters.ts';
import { metricValue, type BreakdownMetric } from '../src/query/metrics.ts';
import { analyticsQuestions, TARGET_FILTERED_MS, TARGET_UNFILTERED_MS } from './lib/analytics-questions.ts';
import { rangeOf } from './lib/analytics-measure.ts';
import { percentile, round } from './lib/stats.ts';
import { loadWebModel, TIMEOUT_MS } from './lib/web-model.ts';
import { WebDataset } from './web-dataset.ts';

/**
 * The columnar read model's workbench (not part of `npm run bench`): generates scenario 8's web
 * data set in-process, derives its dimensions (src/event/derive.ts), cuts its visits, builds the
 * columns, then asks the bench scenario's questions (bench/lib/analytics-questions.ts) plus
 * every-metric breakdowns over ragged 30-day ranges (each run ends one minute and 7 ms earlier)
 * and prints p50/p99 per question (wall clock, and the process's CPU time: the box is shared), the build time and the memory per event. A few answers are
 * checked against a naive computation first.
 *
 *   node --expose-gc --max-old-space-size=12000 bench/columnar-lab.ts [--events 1000000] [--runs 20] [--slices 2]
 */
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '20' },
    slices: { type: 'string', default: '2' },
    // 'pool': the second column splits each scan across --slices threads; 'layers': it answers
    // through Layers (src/query/columnar/layers.ts), as the service does, with its digests.
    second: { type: 'string', default: 'pool' },
  },
});
const DAYS = 30;
const DAY = 86_400_000;
const END = Date.UTC(2026, 10, 1);
const nEvents = Number(values.events);
const runs = Number(values.runs);
const slices = Number(values.slices);
const log = (line: string) => process.stdout.write(`${line}\n`);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** Live heap and array buffer bytes, after collecting (twice, a tick apart: shared buffers are freed late). */
async function memory(): Promise<number> {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Every user's visits are separated by more than the timeout, and within a visit no gap exceeds it. */
function checkVisits(m: ColumnarModel): void {
  const { userEvents, events } = m;
  for (let u = 0; u + 1 < userEvents.length; u++) {
    for (let i = userEvents[u] + 1; i < userEvents[u + 1]; i++) {
      const same = events.visit[i] === events.visit[i - 1];
      const gap = events.ts[i] - events.ts[i - 1];
      if (events.visit[i] < 0 || same !== gap <= TIMEOUT_MS) throw new Error(`visit cut wrong at event ${i}`);
    }
  }
}

/** Visitors and page views per value the plainest way: a Set of users per value. */
function naive(m: ColumnarModel, sel: ColumnarSelection, dim: string) {
  const user = new Uint32Array(m.events.count);
  for (let u = 0; u + 1 < m.userEvents.length; u++) user.fill(u, m.userEvents[u], m.userEvents[u + 1]);
  const valueOf = (name: string, i: number): string | null => {
    const d = parseDimension(name)!;
    if (d.kind === 'visit') {
      const v = m.events.visit[i];
      return v < 0 ? null : m.visits.dims[d.name].dict.value(m.visits.dims[d.name].codes[v]);
    }
    if (d.kind === 'property') return null;
    return m.events.dims[d.name].dict.value(m.events.dims[d.name].codes[i]);
  };
  const name = (f: Filter) => (f.dimension.kind === 'property' ? '' : f.dimension.name);
  const out = new Map<string | null, { users: Set<number>; pv: number }>();
  for (let i = 0; i < m.events.count; i++) {
    if (m.events.ts[i] < sel.from || m.events.ts[i] >= sel.to || m.events.isBot[i] === 1) continue;
    if (!sel.filters.every((f) => valuePasses(f, valueOf(name(f), i)))) continue;
    const k = valueOf(dim, i);
    let g = out.get(k);
    if (g === undefined) out.set(k, (g = { users: new Set(), pv: 0 }));
    g.users.add(user[i]);
    if (valueOf('event_type', i) === 'page_view') g.pv++;
  }
  return out;
}

async function crossCheck(
  engine: ColumnarEngine,
  m: ColumnarModel,
  sel: ColumnarSelection,
  dim: string,
): Promise<void> {
  const want = naive(m, sel, dim);
  const got = await engine.breakdown(sel, parseDimension(dim)!, { events: true, visits: false });
  if (got.groups.length !== want.size)
    throw new Error(`${dim}: ${got.groups.length} rows, naive ${want.size}`);
  for (const g of got.groups) {
    const w = want.get(g.key as string | null);
    if (w === undefined || w.users.size !== g.counts.visitors || w.pv !== g.counts.page_views) {
      throw new Error(
        `${dim}=${String(g.key)}: ${JSON.stringify(g.counts)} vs naive ${w?.users.size}/${w?.pv}`,
      );
    }
  }
  log(`  cross-check ${dim} under [${sel.filters.length} filters]: ${want.size} rows equal the naive sets`);
}

interface LabQuestion {
  name: string;
  filtered: boolean;
  ask: (sel: ColumnarSelection) => unknown;
}

const ALL: BreakdownMetric[] = [
  'visitors',
  'visits',
  'page_views',
  'events',
  'bounce_rate',
  'visit_duration',
  'views_per_visit',
];

/** A breakdown as the service shapes it: rows' metrics, sorted by the first, top 10. */
type Answering = Pick<ColumnarEngine, 'summary' | 'breakdown' | 'uniqueUsers'>;

/** The engine's questions answered through Layers, as src/query/read-model.ts serves them. */
function layersEngine(layers: Layers): Answering {
  return {
    summary: (sel) => {
      const a = layers.answer(sel, { kind: 'none' }, { events: true, visits: true, median: true });
      return Promise.resolve({ counts: a.total, medianMs: a.medianMs });
    },
    breakdown: (sel, dimension, need) =>
      Promise.resolve(layers.answer(sel, { kind: 'dimension', dimension }, need)),
    uniqueUsers: (sel, starts) => {
      const a = layers.answer(sel, { kind: 'buckets', starts }, { events: true, visits: false });
      const byBucket = new Map(a.groups.map((g) => [Number(g.key), g.counts.visitors]));
      return Promise.resolve(starts.map((_, b) => byBucket.get(b) ?? 0));
    },
  };
}

function breakdown(engine: Answering, dim: string, metrics: BreakdownMetric[], filters: Filter[]) {
  const dimension = parseDimension(dim)!;
  const visits = metrics.some((x) => x !== 'visitors' && x !== 'page_views' && x !== 'events');
  return async (sel: ColumnarSelection) => {
    const a = await engine.breakdown({ ...sel, filters }, dimension, { events: true, visits });
    const first = metrics[0];
    return a.groups
      .map((g) => ({ key: g.key, sort: metricValue(first, g.counts) ?? -1, counts: g.counts }))
      .sort((x, y) => y.sort - x.sort)
      .slice(0, 10)
      .map((r) => Object.fromEntries(metrics.map((x) => [x, metricValue(x, r.counts)])));
  };
}

function questions(engine: Answering): LabQuestion[] {
  const out: LabQuestion[] = [];
  for (const q of analyticsQuestions(DAYS)) {
    const filters = parseFilters(q.filters);
    if (q.path === '/v1/stats/summary') {
      out.push({ name: q.name, filtered: false, ask: (sel) => engine.summary({ ...sel, filters }) });
    } else if (q.path === '/v1/stats/timeseries') {
      out.push({
        name: q.name,
        filtered: true,
        ask: (sel) => {
          const starts: number[] = [];
          for (let t = Math.floor(sel.from / DAY) * DAY; t < sel.to; t += DAY) starts.push(t);
          return engine.uniqueUsers({ ...sel, filters }, starts);
        },
      });
    } else {
      const metrics = q.params.metrics.split(',') as BreakdownMetric[];
      out.push({
        name: q.name,
        filtered: q.filtered,
        ask: breakdown(engine, q.params.dimension, metrics, filters),
      });
    }
  }
  for (const dim of ['page', 'channel', 'country'])
    out.push({
      name: `breakdown by ${dim}, all 7 metrics, no filter`,
      filtered: false,
      ask: breakdown(engine, dim, ALL, []),
    });
  out.push({
    name: 'breakdown by page, all 7 metrics, channel==Email & device==mobile',
    filtered: true,
    ask: breakdown(engine, 'page', ALL, parseFilters(['channel==Email', 'device==mobile'])),
  });
  out.push({
    name: 'breakdown by entry_page, all 7 metrics, page~=/blog & country==DE & device==desktop',
    filtered: true,
    ask: breakdown(
      engine,
      'entry_page',
      ALL,
      parseFilters(['page~=/blog', 'country==DE', 'device==desktop']),
    ),
  });
  return out;
}

/** Run i's range: 30 days ending i minutes and 7 ms before the data set's end (ragged). */
function selection(i: number): ColumnarSelection {
  return { ...rangeOf(END - 7, DAYS, i), filters: [], bots: 'exclude' };
}

/** The model alone (the builder and its arrival-order arrays are garbage once this returns). */
function buildModel(dataset: WebDataset): { model: ColumnarModel; generated: number; built: number } {
  const builder = new ColumnarBuilder();
  let t0 = performance.now();
  loadWebModel(dataset, builder);
  const generated = performance.now() - t0;
  t0 = performance.now();
  const model = builder.build();
  return { model, generated, built: performance.now() - t0 };
}

async function main(): Promise<void> {
  const dataset = new WebDataset({ events: nEvents, end: END, days: DAYS });
  const before = await memory();
  const { model, generated, built } = buildModel(dataset);
  const after = await memory();
  const c = dataset.counts;
  log(
    `columnar lab: ${c.events} events, ${c.visitors} visitors, ${model.visits.count} visits (dataset says ${c.visits}), ${c.botEvents} bot events`,
  );
  log(
    `generate + derive + cut visits: ${round(generated / 1000)} s; build (cluster, sort, encode): ${round(built / 1000, 2)} s`,
  );
  log(
    `memory: heap+arrayBuffers ${round((after - before) / 2 ** 20)} MiB = ${round((after - before) / c.events)} B/event; model arrays+dictionaries ${round(modelBytes(model) / 2 ** 20)} MiB = ${round(modelBytes(model) / c.events)} B/event`,
  );
  checkVisits(model);
  log('  visits: every cut matches the 30-min gap rule');
  const engine = new ColumnarEngine(model);
  const base = selection;
  await crossCheck(engine, model, base(0), 'country');
  await crossCheck(
    engine,
    model,
    { ...base(1), filters: parseFilters(['country==US', 'browser==Chrome']) },
    'referrer',
  );
  await crossCheck(
    engine,
    model,
    { ...base(2), filters: parseFilters(['page~=/blog', 'country==DE', 'device==desktop']) },
    'referrer',
  );
  const summary = await engine.summary(base(0));
  let visits = 0;
  for (let v = 0; v < model.visits.count; v++) {
    const s = model.visits.start[v];
    if (s >= base(0).from && s < base(0).to && model.visits.isBot[v] === 0) visits++;
  }
  if (visits !== summary.counts.visits)
    throw new Error(`summary visits ${summary.counts.visits}, naive ${visits}`);
  log(`  cross-check summary visits: ${visits} equal the naive count`);
  log(`summary of run 0: ${JSON.stringify({ ...summary.counts, median_ms: summary.medianMs })}`);

  const layered = values.second === 'layers';
  const pool = layered ? undefined : new ScanPool(model, slices);
  const split = pool === undefined ? layersEngine(new Layers(model)) : new ColumnarEngine(model, { pool });
  log(
    `\nwall p50/p99 and CPU p50 (this process, all threads) per question, ms; 1 thread, then ${layered ? 'Layers with digests' : `${slices} slices`}`,
  );
  log(
    `${'question'.padEnd(92)} ${'1: p50'.padStart(7)} ${'p99'.padStart(7)} ${'cpu'.padStart(7)} ${`${slices}: p50`.padStart(7)} ${'p99'.padStart(7)} ${'cpu'.padStart(7)}  target`,
  );
  const serial = questions(engine);
  const parallel = questions(split);
  for (let n = 0; n < serial.length; n++) {
    const q = serial[n];
    const target = q.filtered ? TARGET_FILTERED_MS : TARGET_UNFILTERED_MS;
    const same =
      JSON.stringify(await q.ask(selection(0))) === JSON.stringify(await parallel[n].ask(selection(0)));
    if (!same) throw new Error(`${q.name}: the two engines answer differently`);
    const one = await time(q);
    const many = await time(parallel[n]);
    const cells = [...one, ...many].map((x) => String(round(x)).padStart(7));
    log(`${q.name.padEnd(92)} ${cells.join(' ')}  ≤ ${target} ${many[1] <= target ? 'ok' : 'MISSED'}`);
  }
  await pool?.stop();
  log(
    `load: ${loadavg()
      .map((x) => round(x, 2))
      .join(', ')} (1, 5, 15 min) on ${availableParallelism()} CPUs`,
  );
}

/** Wall p50, p99 and CPU p50 (ms) of `runs` answers over ragged ranges, after one warm-up answer. */
async function time(q: LabQuestion): Promise<[number, number, number]> {
  await q.ask(selection(runs + 1)); // warms the JIT on a range no run uses
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const sel = selection(i);
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    await q.ask(sel);
    wall.push(performance.now() - start);
    const c = process.cpuUsage(cpu0);
    cpu.push((c.user + c.system) / 1000);
  }
  return [percentile(wall, 50), percentile(wall, 99), percentile(cpu, 50)];
}

await main();
