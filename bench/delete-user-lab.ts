import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { openDatabase, type Database } from '../src/store/database.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { BatchWriter } from '../src/store/batch-writer.ts';
import { DAY, HOUR, LEVELS } from '../src/store/levels.ts';
import { RawPartitions } from '../src/store/partitions.ts';
import { findFreePort } from '../src/util/free-port.ts';
import { loadThroughWriter } from './lib/analytics-load.ts';
import { startService } from './lib/processes.ts';
import { markdownTable } from './lib/report.ts';
import { deleteUserRows, heavyUser, USER } from './scenarios/delete-user.ts';
import { WebDataset } from './web-dataset.ts';

/**
 * Scenario 9's workbench (not part of `npm run bench`): an A/B of tally.delete_user on one kept
 * data set. The first run loads scenario 8's web data set once through BatchWriter into database
 * `labbase` of an embedded PostgreSQL kept in `--dir`; then
 *   * `--mode scenario` (default): clones it (CREATE DATABASE … TEMPLATE), starts `tally query` on
 *     the clone and runs scenario 9 there (bench/scenarios/delete-user.ts: the heavy user written,
 *     the plain SQL baseline, the deletion under other users' batches and summaries), and writes
 *     bench/results/<date>-<N>-delete-user-<variant>.{json,md};
 *   * `--mode explain`: on a clone holding the heavy user (made once, kept), one deletion in a
 *     transaction rolled back, printing each statement of the function with its time (auto_explain,
 *     plans with --plans).
 * `--variant before` runs migration 022's function (replaced in the clone, so migration 023's SET
 * clauses go too); `after` migration 023's, as the file reads now. Interleave the variants: on a
 * shared machine the load moves more between runs than the difference between two close variants.
 *
 *   node bench/delete-user-lab.ts [--dir /tmp/tally-delete-lab] [--events 1000000]
 *                                 [--mode scenario|explain] [--variant before|after] [--plans]
 */
const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/tally-delete-lab' },
    events: { type: 'string', default: '1000000' },
    heavy: { type: 'string', default: '100000' },
    mode: { type: 'string', default: 'scenario' },
    variant: { type: 'string', default: 'after' },
    plans: { type: 'boolean', default: false },
  },
});
const MINUTE = 60_000;
const events = Number(values.events);
const heavy = Number(values.heavy);
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const silent = pino({ level: 'silent' });

const postgres = await startEmbeddedPostgres({ dataDir: values.dir });
const url = (db: string) => postgres.connectionString.replace(/\/postgres$/, `/${db}`);
const root = new pg.Client({ connectionString: postgres.connectionString });
await root.connect();
try {
  const end = await dataSet();
  if (values.mode === 'explain') await explain(end);
  else await scenario(end);
} finally {
  await root.end();
  await postgres.stop();
}

/** The data set's end (ms), loading it first when `--dir` has none. */
async function dataSet(): Promise<number> {
  const meta = join(values.dir, 'lab.json');
  if (existsSync(meta)) return (JSON.parse(await readFile(meta, 'utf8')) as { end: number }).end;
  const end = Math.floor(Date.now() / MINUTE) * MINUTE - 60 * MINUTE;
  await root.query('CREATE DATABASE labbase');
  const database = await open('labbase');
  try {
    log(`loading ${events} events`);
    const dataset = new WebDataset({ events, end, days: 30 });
    const load = await loadThroughWriter(database.pool, dataset, {
      events,
      batchSize: 5_000,
      inFlight: 3,
      log,
    });
    log(`loaded in ${Math.round(load.seconds)} s`);
    await database.pool.query('VACUUM ANALYZE');
  } finally {
    await database.stop();
  }
  await writeFile(meta, JSON.stringify({ end, events }));
  return end;
}

async function open(db: string): Promise<Database> {
  return openDatabase(
    { kind: 'external', connectionString: url(db) },
    { poolSize: 4, applicationName: 'tally-delete-lab', logger: silent },
  );
}

/** Puts migration 022's (`before`) or 023's (`after`) tally.delete_user in; returns its fingerprint. */
async function useVariant(db: pg.Pool | pg.PoolClient): Promise<string> {
  // The file's text, not the migrated database's: the data set outlives edits of the migration.
  const files: Record<string, string> = { before: '022_delete_user.sql', after: '023_delete_user_speed.sql' };
  const file = files[values.variant];
  if (file === undefined) throw new Error(`--variant before|after, not ${values.variant}`);
  const sql = await readFile(new URL(`../src/store/migrations/${file}`, import.meta.url), 'utf8');
  await db.query(
    sql.replace('CREATE FUNCTION tally.delete_user', 'CREATE OR REPLACE FUNCTION tally.delete_user'),
  );
  const { rows } = await db.query<{ md5: string }>(
    `SELECT md5(prosrc || coalesce(array_to_string(proconfig, ','), '')) AS md5 FROM pg_proc WHERE proname = 'delete_user'`,
  );
  return rows[0].md5;
}

async function scenario(end: number): Promise<void> {
  await root.query('DROP DATABASE IF EXISTS labrun');
  await root.query('CREATE DATABASE labrun TEMPLATE labbase');
  const database = await open('labrun');
  const queryDir = await mkdtemp(join(tmpdir(), 'tally-delete-lab-'));
  try {
    const fingerprint = await useVariant(database.pool);
    log(`variant ${values.variant} (delete_user ${fingerprint})`);
    const admin = await database.pool.connect();
    try {
      await admin.query("SET statement_timeout = 0; SET work_mem = '64MB'");
      const port = await findFreePort();
      const tally = await startService({
        name: 'tally query',
        args: ['query'],
        env: {
          DATABASE_URL: url('labrun'),
          TALLY_QUERY_PORT: String(port),
          TALLY_GRPC_PORT: '0',
          TALLY_DATA_DIR: queryDir,
        },
        port,
      });
      try {
        await readModelLoaded(tally.url);
        const failures: string[] = [];
        const rows = await deleteUserRows({
          pool: database.pool,
          admin,
          tallyUrl: tally.url,
          dataset: new WebDataset({ events, end, days: 30 }),
          end,
          heavy,
          events,
          fail: (what) => failures.push(what),
          log,
        });
        log(`\n${markdownTable(rows)}${failures.length > 0 ? `\nFAILED: ${failures.join('; ')}` : ''}`);
        const size = events >= 1e6 ? `${events / 1e6}m` : `${events / 1e3}k`;
        const stamp = `${new Date().toISOString().replace(/[:.]/g, '-')}-${size}-delete-user-${values.variant}`;
        const file = new URL(`results/${stamp}`, import.meta.url).pathname;
        const meta = {
          date: new Date().toISOString(),
          command: `node bench/delete-user-lab.ts ${process.argv.slice(2).join(' ')}`,
          variant: values.variant,
          function: fingerprint,
          loadavg: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' '),
          failures,
        };
        await writeFile(`${file}.json`, `${JSON.stringify({ ...meta, rows }, null, 2)}\n`);
        await writeFile(`${file}.md`, `${markdownTable(rows)}\n`);
        log(`wrote ${file}.{json,md}`);
      } finally {
        await tally.stop();
      }
    } finally {
      admin.release();
    }
  } finally {
    await database.stop();
    await rm(queryDir, { recursive: true, force: true });
    await root.query('DROP DATABASE IF EXISTS labrun');
  }
}

async function readModelLoaded(tallyUrl: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    const body = (await (await fetch(`${tallyUrl}/ready`)).json()) as { checks?: Record<string, string> };
    const state = body.checks?.read_model;
    if (state === undefined || state === 'ok') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  log(`read model loaded in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** One deletion of the heavy user, rolled back, each statement of the function with its time. */
async function explain(end: number): Promise<void> {
  const { rowCount } = await root.query(`SELECT 1 FROM pg_database WHERE datname = 'labheavy'`);
  if (rowCount === 0) {
    await root.query('CREATE DATABASE labheavy TEMPLATE labbase');
    const database = await open('labheavy');
    try {
      const writer = new BatchWriter({
        pool: database.pool,
        partitions: new RawPartitions(database.pool, undefined),
        storeRaw: true,
      });
      for (const batch of heavyUser(heavy, new WebDataset({ events, end, days: 30 }).start))
        await writer.write({ events: batch });
      await database.pool.query('ANALYZE');
    } finally {
      await database.stop();
    }
  }
  const database = await open('labheavy');
  const client = await database.pool.connect();
  try {
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    await client.query('BEGIN');
    await client.query('SET LOCAL statement_timeout = 0');
    // In the transaction: `before` is rolled back with the deletion.
    const fingerprint = await useVariant(client);
    await client.query(`LOAD 'auto_explain'`);
    await client.query(`SET LOCAL auto_explain.log_min_duration = 0; SET LOCAL auto_explain.log_analyze = on;
      SET LOCAL auto_explain.log_buffers = on; SET LOCAL auto_explain.log_timing = off;
      SET LOCAL auto_explain.log_nested_statements = on; SET LOCAL auto_explain.log_level = notice`);
    const started = performance.now();
    await client.query(
      `SELECT * FROM tally.delete_user('default', $1, decode(repeat('ab', 32), 'hex'), $2::int2[], $3::float8[], $4::int2, $5::int2, false)`,
      [USER, LEVELS.map((l) => l.level), LEVELS.map((l) => l.ms), HOUR.level, DAY.level],
    );
    const total = performance.now() - started;
    await client.query('ROLLBACK');
    log(`variant ${values.variant} (delete_user ${fingerprint}): ${Math.round(total)} ms`);
    for (const n of notices) {
      const m = /^duration: ([\d.]+) ms\s+plan:\s*\nQuery Text: ([\s\S]*?)\n([\s\S]*)$/.exec(n);
      if (m === null) continue;
      log(`${m[1].padStart(10)} ms  ${m[2].replace(/\s+/g, ' ').slice(0, 110)}`);
      if (values.plans) log(m[3]);
    }
  } finally {
    client.release();
    await database.stop();
  }
}
