import type pg from 'pg';
import { measureBaseline, rangeOf, type Side } from '../lib/analytics-measure.ts';
import { productMismatch } from '../lib/product-check.ts';
import {
  productQuestions,
  productRequest,
  TARGET_PRODUCT_MS,
  type ProductQuestion,
} from '../lib/product-questions.ts';
import type { Row } from '../lib/report.ts';
import { percentile, round } from '../lib/stats.ts';
import type { BenchContext } from '../run.ts';

const SCENARIO = '10. product analytics, uncached';

/** One request; ms measured at the client (keep-alive fetch, HTTP included) and the parsed answer. */
async function ask(base: string, q: ProductQuestion, from: number, to: number) {
  const { url, init } = productRequest(q, from, to);
  const started = performance.now();
  const res = await fetch(`${base}${url}`, init);
  const body = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200)
    return { ms, problem: `${q.method} ${q.path} answered ${res.status}: ${body.slice(0, 300)}` };
  return { ms, answer: JSON.parse(body) as unknown };
}

/** Tally's side: a warm-up over a range earlier still, then `runs` runs, each range a minute earlier. */
async function measureTally(
  base: string,
  q: ProductQuestion,
  opts: { end: number; days: number; runs: number },
): Promise<Side> {
  const warm = rangeOf(opts.end, opts.days, opts.runs + 1);
  const w = await ask(base, q, warm.from, warm.to);
  if (w.problem !== undefined) return { samples: [], failure: w.problem };
  const side: Side = { samples: [] };
  for (let i = 0; i < opts.runs; i++) {
    const { from, to } = rangeOf(opts.end, opts.days, i);
    const r = await ask(base, q, from, to);
    if (r.problem !== undefined) return { samples: [], failure: r.problem };
    side.samples.push(r.ms);
    if (i === 0) side.first = r.answer;
  }
  return side;
}

/**
 * Scenario 10 (issue 21, "Speed"), on scenario 8's database and `tally query` before anything
 * changes them: a 3-step funnel with a 7-day window, an 8-week retention table and a depth-3
 * path query over the whole data set, each uncached (every run's range a minute earlier) against
 * the same question as one SQL over the raw events, on the same ranges; Tally's first answer
 * must equal the baseline's (bench/lib/product-check.ts).
 */
export async function productRows(opts: {
  ctx: BenchContext;
  admin: pg.ClientBase;
  tallyUrl: string;
  end: number;
  days: number;
  fail: (what: string) => void;
  log: (line: string) => void;
}): Promise<Row[]> {
  const { ctx, admin, end, days, fail, log } = opts;
  const rows: Row[] = [];
  const events = ctx.analyticsEvents.toLocaleString('en-US');
  const p = (s: number[], pct: number) => (s.length === 0 ? Number.NaN : round(percentile(s, pct), 1));
  for (const q of productQuestions(days)) {
    log(`product: ${q.name}`);
    const runs = ctx.analyticsRuns;
    const t = await measureTally(opts.tallyUrl, q, { end, days, runs });
    if (t.failure !== undefined) fail(`${q.name}: ${t.failure}`);
    const b = await measureBaseline(admin, q, { end, days, runs: ctx.analyticsBaselineRuns });
    const wrong =
      t.first === undefined || b.first === undefined
        ? undefined
        : productMismatch(q, t.first, b.first as unknown[], rangeOf(end, days, 0));
    if (wrong !== undefined) fail(`${q.name}: wrong answer: ${wrong}`);
    const scope = `${q.name} (${events} events; Tally ${runs} runs, baseline ${b.samples.length})`;
    const base = { scenario: SCENARIO, unit: 'ms', baselineName: 'one SQL over the raw events' };
    rows.push(
      { ...base, metric: `p50, ${scope}`, tally: p(t.samples, 50), baseline: p(b.samples, 50) },
      {
        ...base,
        metric: `p99, ${scope}`,
        tally: p(t.samples, 99),
        baseline: p(b.samples, 99),
        target: `≤ ${TARGET_PRODUCT_MS} ms`,
        note: t.failure ?? wrong,
      },
    );
  }
  return rows;
}
