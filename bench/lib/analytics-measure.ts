import type pg from 'pg';
import { questionUrl, type AnalyticsQuestion } from './analytics-questions.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

export interface Side {
  /** ms per measured run, in run order; empty when the side failed. */
  samples: number[];
  /** The answer of run 0 (the range ending at `end`), for the cross-checks. */
  first?: unknown;
  failure?: string;
}

/**
 * The ranges of run i: the `days` days ending i minutes before `end`, so each Tally request is a
 * new cache key (uncached) and a real query over a ragged range; the baseline's run i asks for
 * the same range as Tally's. The unmeasured warm-up asks for a range earlier still.
 */
export function rangeOf(end: number, days: number, i: number): { from: number; to: number } {
  const to = end - i * MINUTE;
  return { from: to - days * DAY, to };
}

/** Why Tally's answer is not the contract's, in words a reader of the bench output acts on. */
function contractProblem(q: AnalyticsQuestion, status: number, body: string): string | undefined {
  if (q.path === '/v1/stats/breakdown' && status === 404)
    return 'breakdown endpoint missing (GET /v1/stats/breakdown → 404)';
  if (status === 400 && q.filters.length > 0)
    return `filters not accepted by ${q.path} (400, CONTRACT-20 filter syntax): ${body.slice(0, 300)}`;
  if (status !== 200) return `${q.path} answered ${status}: ${body.slice(0, 300)}`;
  const json = JSON.parse(body) as Record<string, unknown>;
  if (q.path === '/v1/stats/summary') {
    const missing = ['visitors', 'visits', 'bounce_rate'].filter((k) => !(k in json));
    if (missing.length > 0) return `summary lacks ${missing.join(', ')} (issue-20 summary fields missing)`;
  }
  if (q.path === '/v1/stats/breakdown' && (!Array.isArray(json.results) || typeof json.total !== 'object'))
    return `breakdown answer lacks results[] or total: ${body.slice(0, 300)}`;
  return undefined;
}

/** One GET; ms measured at the client (keep-alive fetch, HTTP included) and the parsed answer. */
async function tallyGet(base: string, q: AnalyticsQuestion, from: number, to: number) {
  const url = `${base}${questionUrl(q, from, to)}`;
  const started = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  const ms = performance.now() - started;
  const problem = contractProblem(q, res.status, body);
  return { ms, problem, answer: problem === undefined ? (JSON.parse(body) as unknown) : undefined };
}

/** Tally's side: a warm-up, `runs` uncached runs, then `cachedRuns` of run 0's request again. */
export async function measureTally(
  base: string,
  q: AnalyticsQuestion,
  opts: { end: number; days: number; runs: number; cachedRuns: number },
): Promise<{ uncached: Side; cached: number[] }> {
  const warm = rangeOf(opts.end, opts.days, opts.runs + 1);
  const w = await tallyGet(base, q, warm.from, warm.to);
  if (w.problem !== undefined) return { uncached: { samples: [], failure: w.problem }, cached: [] };
  const uncached: Side = { samples: [] };
  for (let i = 0; i < opts.runs; i++) {
    const { from, to } = rangeOf(opts.end, opts.days, i);
    const r = await tallyGet(base, q, from, to);
    if (r.problem !== undefined) return { uncached: { samples: [], failure: r.problem }, cached: [] };
    uncached.samples.push(r.ms);
    if (i === 0) uncached.first = r.answer;
  }
  const cached: number[] = [];
  const { from, to } = rangeOf(opts.end, opts.days, 0);
  for (let i = 0; i < opts.cachedRuns; i++) cached.push((await tallyGet(base, q, from, to)).ms);
  return { uncached, cached };
}

/** The baseline's side: the question's SQL, a warm-up and then `runs` runs over Tally's ranges. */
export async function measureBaseline(
  client: pg.ClientBase,
  q: Pick<AnalyticsQuestion, 'sql' | 'sqlParams'>,
  opts: { end: number; days: number; runs: number },
): Promise<Side> {
  const ask = async (i: number) => {
    const { from, to } = rangeOf(opts.end, opts.days, i);
    const started = performance.now();
    const { rows } = await client.query(q.sql, [new Date(from), new Date(to), ...q.sqlParams]);
    return { ms: performance.now() - started, rows };
  };
  await ask(opts.runs + 1);
  const side: Side = { samples: [] };
  for (let i = 0; i < opts.runs; i++) {
    const r = await ask(i);
    side.samples.push(r.ms);
    if (i === 0) side.first = r.rows;
  }
  return side;
}

type BreakdownRow = { value: string; visitors: number; page_views?: number };

/**
 * Where Tally's answer of run 0 and the baseline's mean the same thing (AnalyticsQuestion.check),
 * whether they agree; a description of the first difference, or undefined.
 */
export async function crossCheck(
  client: pg.ClientBase,
  q: AnalyticsQuestion,
  tally: unknown,
  baseline: unknown,
  opts: { end: number; days: number },
): Promise<string | undefined> {
  const check = q.check;
  if (check === undefined || tally === undefined || baseline === undefined) return undefined;
  if (check.kind === 'summary-visitors') {
    const t = (tally as { visitors: number }).visitors;
    const b = (baseline as { visitors: number }[])[0].visitors;
    return t === b ? undefined : `summary visitors ${t}, raw events say ${b}`;
  }
  const answer = tally as { results: BreakdownRow[]; total: { visitors: number } };
  if (check.kind === 'total-visitors') {
    const { from, to } = rangeOf(opts.end, opts.days, 0);
    const { rows } = await client.query<{ visitors: number }>(check.sql, [
      new Date(from),
      new Date(to),
      ...q.sqlParams,
    ]);
    const b = rows[0].visitors;
    return answer.total.visitors === b
      ? undefined
      : `total visitors ${answer.total.visitors}, raw events say ${b}`;
  }
  const expected = baseline as BreakdownRow[];
  const byValue = new Map(expected.map((r) => [r.value, r]));
  for (let i = 0; i < Math.max(expected.length, answer.results.length); i++) {
    const t = answer.results.at(i);
    const b = expected.at(i);
    if (t?.visitors !== b?.visitors)
      return `row ${i}: Tally ${JSON.stringify(t)}, raw events ${JSON.stringify(b)}`;
    const same = t === undefined ? undefined : byValue.get(t.value);
    if (same !== undefined && (same.visitors !== t!.visitors || same.page_views !== t!.page_views))
      return `value ${JSON.stringify(t!.value)}: Tally ${JSON.stringify(t)}, raw events ${JSON.stringify(same)}`;
  }
  return undefined;
}
