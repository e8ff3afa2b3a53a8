import { mkdir, writeFile } from 'node:fs/promises';

export interface Row {
  scenario: string;
  metric: string;
  tally: number;
  /** Baseline measured in the same run; undefined when the scenario has none. */
  baseline?: number;
  baselineName?: string;
  /** Where Tally aims, as text ("≥ 70 % of baseline"). */
  target?: string;
  unit: string;
  note?: string;
}

export function ratio(row: Row): string {
  if (row.baseline === undefined || row.baseline === 0 || !Number.isFinite(row.tally)) return '';
  return `${Math.round((row.tally / row.baseline) * 100)} %`;
}

export function markdownTable(rows: readonly Row[]): string {
  const lines = [
    '| scenario | metric | Tally | baseline | Tally / baseline | target |',
    '|---|---|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    const baseline =
      r.baseline === undefined ? '—' : `${fmt(r.baseline)} ${r.unit} (${r.baselineName ?? ''})`;
    lines.push(
      `| ${r.scenario} | ${r.metric} | ${fmt(r.tally)} ${r.unit} | ${baseline} | ${ratio(r) || '—'} | ${r.target ?? ''} |`,
    );
  }
  return lines.join('\n');
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  // Small figures are latencies in ms, where the second decimal still means something.
  return n.toLocaleString('en-US', { maximumFractionDigits: Math.abs(n) < 10 ? 2 : 1 });
}

/** Writes bench/results/<date>.json and .md (`<date>-quick.*` for `--quick` runs, not kept in git). */
export async function writeResults(
  rows: readonly Row[],
  quick: boolean,
  meta: Record<string, unknown>,
): Promise<{ json: string; markdown: string }> {
  const dir = new URL('../results/', import.meta.url);
  await mkdir(dir, { recursive: true });
  const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}`;
  const json = new URL(`${stamp}.json`, dir);
  const markdown = new URL(`${stamp}.md`, dir);
  await writeFile(json, `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
  await writeFile(markdown, `${markdownTable(rows)}\n`);
  return { json: json.pathname, markdown: markdown.pathname };
}
