import type { ProductQuestion } from './product-questions.ts';

const DAY = 86_400_000;
const WEEK = 7 * DAY;

type FunnelAnswer = { steps: { count: number }[] };
type RetentionAnswer = { cohorts: { start: string; users: number; returned: (number | null)[] }[] };
type PathsAnswer = {
  anchors: number;
  levels: { depth: number; items: { path: (string | null)[]; count: number }[]; other: number }[];
};

type FunnelRow = { step1: number; step2: number; step3: number };
type RetentionRow = { start: Date; k: number; users: number };
type PathsRow = { depth: number; n1: string | null; n2: string | null; n3: string | null; count: number };

/** The Monday 00:00 UTC of the week holding `t` (1970-01-01 was a Thursday). */
function utcWeekStart(t: number): number {
  const day = Math.floor(t / DAY);
  return (day - ((day + 3) % 7)) * DAY;
}

/**
 * Where Tally's first answer and the baseline's rows (bench/lib/product-questions.ts) differ over
 * the range [from, to): a description of the first difference, or undefined.
 */
export function productMismatch(
  q: ProductQuestion,
  tally: unknown,
  rows: readonly unknown[],
  range: { from: number; to: number },
): string | undefined {
  if (q.kind === 'funnel') return funnelMismatch(tally as FunnelAnswer, rows[0] as FunnelRow);
  if (q.kind === 'retention') {
    const periods = Number(q.params.periods);
    return retentionMismatch(tally as RetentionAnswer, rows as RetentionRow[], range, periods);
  }
  return pathsMismatch(tally as PathsAnswer, rows as PathsRow[], Number(q.params.depth));
}

function funnelMismatch(tally: FunnelAnswer, row: FunnelRow): string | undefined {
  const t = tally.steps.map((s) => s.count);
  const b = [row.step1, row.step2, row.step3];
  return t.length === b.length && t.every((c, i) => c === b[i])
    ? undefined
    : `funnel step counts: Tally ${JSON.stringify(t)}, raw events ${JSON.stringify(b)}`;
}

/**
 * The cohorts the contract lists are every week meeting [from, to), the first one starting before
 * `from` (its users are those first seen from `from` on) and the last ones cut at `to`: a period
 * starting at or after `to` is null (not observable), one cut by `to` counts the returns before it.
 * The baseline's rows say the counts; the weeks and the nulls follow from the range.
 */
function retentionMismatch(
  tally: RetentionAnswer,
  rows: readonly RetentionRow[],
  { from, to }: { from: number; to: number },
  periods: number,
): string | undefined {
  const count = new Map(rows.map((r) => [`${r.start.getTime()} ${r.k}`, r.users]));
  const expected: { start: number; users: number; returned: (number | null)[] }[] = [];
  for (let start = utcWeekStart(from); start < to; start += WEEK) {
    const returned = Array.from({ length: periods }, (_, k) =>
      start + k * WEEK >= to ? null : (count.get(`${start} ${k}`) ?? 0),
    );
    expected.push({ start, users: count.get(`${start} 0`) ?? 0, returned });
  }
  const listed = new Set(expected.map((c) => c.start));
  const stray = rows.find((r) => !listed.has(r.start.getTime()));
  if (stray !== undefined) return `raw events have a cohort outside the range: ${JSON.stringify(stray)}`;
  const t = tally.cohorts.map((c) => ({ start: Date.parse(c.start), users: c.users, returned: c.returned }));
  for (let i = 0; i < Math.max(t.length, expected.length); i++) {
    if (JSON.stringify(t[i]) !== JSON.stringify(expected[i]))
      return `cohort ${i}: Tally ${JSON.stringify(t[i])}, raw events ${JSON.stringify(expected[i])}`;
  }
  return undefined;
}

function pathsMismatch(tally: PathsAnswer, rows: readonly PathsRow[], depth: number): string | undefined {
  const anchors = rows.find((r) => r.depth === 0)?.count ?? 0;
  if (tally.anchors !== anchors) return `paths anchors: Tally ${tally.anchors}, raw events ${anchors}`;
  if (tally.levels.length !== depth) return `paths: Tally has ${tally.levels.length} levels, asked ${depth}`;
  for (let d = 1; d <= depth; d++) {
    const items = rows
      .filter((r) => r.depth === d)
      .map((r) => ({ path: [r.n1, r.n2, r.n3].slice(0, d), count: r.count }));
    const expected = { depth: d, items, other: anchors - items.reduce((a, i) => a + i.count, 0) };
    const level = tally.levels[d - 1];
    const got = {
      depth: level.depth,
      items: level.items.map((i) => ({ path: i.path, count: i.count })),
      other: level.other,
    };
    if (JSON.stringify(got) !== JSON.stringify(expected))
      return `paths depth ${d}: Tally ${JSON.stringify(got)}, raw events ${JSON.stringify(expected)}`;
  }
  return undefined;
}
