import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { findFreePort } from '../src/util/free-port.ts';
import { startService } from './lib/processes.ts';
import { markdownTable, writeResults, type Row } from './lib/report.ts';
import { embeddedScenarios } from './scenarios/embedded.ts';
import { singleEventIngest } from './scenarios/http-ingest.ts';

/**
 * `npm run bench [-- --quick]`: every scenario of the benchmark issue that this build supports,
 * each Tally figure next to a baseline measured in the same run. Writes bench/results/<date>.json
 * and .md and prints the table. `--quick` (CI) only proves the harness works: short runs, small sizes.
 */
export interface BenchContext {
  quick: boolean;
  warmupSec: number;
  measureSec: number;
  connections: number;
  e2eEvents: number;
  probes: number;
}

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const quick = values.quick;
const ctx: BenchContext = {
  quick,
  warmupSec: quick ? 1 : 3,
  measureSec: quick ? 3 : 10,
  connections: 50,
  e2eEvents: quick ? 20_000 : 300_000,
  probes: quick ? 20 : 200,
};

const rows: Row[] = [];
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const cleanups: (() => Promise<void>)[] = [];

try {
  // Embedded mode: `tally start` with its own PostgreSQL, exactly what `npm start` runs.
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const port = await findFreePort();
  log('starting tally start (embedded PostgreSQL)');
  const embedded = await startService({
    name: 'tally start',
    args: ['start'],
    env: { SERVER_PORT: String(port), TALLY_DATA_DIR: dataDir },
    port,
  });
  cleanups.unshift(() => embedded.stop());

  log('scenario 1: single-event HTTP ingest vs bare Fastify');
  rows.push(...(await singleEventIngest(ctx, embedded, 'embedded')));
  log('scenarios 4 and 5: embedded end to end and freshness');
  rows.push(...(await embeddedScenarios(ctx, embedded)).rows);
  rows.push({
    scenario: '7. peak RSS',
    metric: 'tally start (embedded), Node process',
    tally: Math.round(await embedded.peakRssMb()),
    unit: 'MB',
    target: '≤ 300 MB',
  });
} finally {
  for (const cleanup of cleanups)
    await cleanup().catch((err: unknown) => log(`cleanup failed: ${String(err)}`));
}

const table = markdownTable(rows);
const files = await writeResults(rows, {
  date: new Date().toISOString(),
  quick,
  node: process.version,
  cpus: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  command: `npm run bench${quick ? ' -- --quick' : ''}`,
});
process.stdout.write(`\n${table}\n\nwritten to ${files.json} and ${files.markdown}\n`);
