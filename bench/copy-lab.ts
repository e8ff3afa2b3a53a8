/**
 * A lab script for issue 24 ("measure COPY against unnest for raw rows and keys"): stores the
 * same events' dedup keys (tally.event_ids) and raw rows (tally.events) in an embedded PostgreSQL
 * of its own, seven ways, and prints for each the wall time and the CPU time of its PostgreSQL
 * backend (/proc/<pid>/schedstat of pg_backend_pid(), nanoseconds) and of this Node process per
 * event, the median over rounds.
 *
 *   node bench/copy-lab.ts [events] [batch size] [rounds]      (default 200000 5000 3)
 *
 * The ways, each on its own connection, so its backend's CPU is its own:
 *   unnest                today's: the two statements of tally.write_events (migration 021) that
 *                         store keys and raw rows, in a PL/pgSQL function of the same shape,
 *                         called with the arrays as parameters (one round trip, autocommit);
 *   staged binary|text    COPY of the batch into a TEMP table (ON COMMIT DELETE ROWS), then the
 *                         keys with ON CONFLICT DO NOTHING RETURNING and the raw rows of the fresh
 *                         ones INSERT … SELECT from it: the only way COPY keeps the dedup;
 *   keys+copy binary|text the keys through unnest as today (fresh flags back to the client), then
 *                         COPY of the fresh events straight into tally.events;
 *   copy|insert keys, no dedup
 *                         an upper bound (optimisticWay): keys with no ON CONFLICT, then raw rows
 *                         by binary COPY.
 * Two-step ways split their backend time between the steps (the 1st and 2nd step columns).
 * Interleaved batch by batch (the order rotated each batch), each way and round in a project of
 * its own so every key is new, after a warm-up round that is not counted. The events are those of
 * bench scenarios 3 and 4 (bench/lib/events.ts), derived once as write-events.ts does. At the end
 * it checks that every way stored the same rows and that a batch written again stores nothing.
 * Only keys and raw rows: no rollups, visits or feed, which write_events also does.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { migrate } from '../src/store/migrate.ts';
import { dayStart, RawPartitions } from '../src/store/partitions.ts';
import {
  columns,
  RAW_COLUMNS,
  STAGED_FUNCTION,
  STAGING_TABLE,
  UNNEST_FUNCTION,
  WAYS,
  type Columns,
  type Way,
} from './lib/copy-ways.ts';
import { benchBatch } from './lib/events.ts';

const [eventsArg = '200000', sizeArg = '5000', roundsArg = '3'] = process.argv.slice(2);
const size = Number(sizeArg);
const batchCount = Math.max(1, Math.round(Number(eventsArg) / size));
const rounds = Number(roundsArg);
const WINDOW = Date.parse('2019-06-01T00:00:00Z');

/** CPU time of a process so far, in nanoseconds (the first field of /proc/<pid>/schedstat). */
function cpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

interface Tally {
  events: number;
  wallMs: number;
  backendNs: number;
  /** The backend's CPU time before `lap`. */
  firstNs: number;
  nodeUs: number;
  batchMs: number[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dataDir = await mkdtemp(join(tmpdir(), 'tally-copy-lab-'));
const server = await startEmbeddedPostgres({ dataDir });
const admin = new pg.Pool({ connectionString: server.connectionString, max: 1 });
const clients: { name: string; way: Way; client: pg.Client; pid: number }[] = [];
try {
  await migrate(admin);
  await admin.query('CREATE SCHEMA copylab');
  await admin.query(UNNEST_FUNCTION);
  await admin.query(STAGED_FUNCTION);
  await new RawPartitions(admin, undefined).ensure([dayStart(WINDOW)]);
  for (const [name, way] of WAYS) {
    const client = new pg.Client({ connectionString: server.connectionString });
    await client.connect();
    await client.query(STAGING_TABLE);
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    clients.push({ name, way, client, pid: rows[0].pid });
  }
  // One span of a day, so every raw row falls in the one partition made above.
  const events = benchBatch(batchCount * size, WINDOW, 86_400_000);
  const batches: Columns[] = [];
  for (let i = 0; i < events.length; i += size) batches.push(columns(events.slice(i, i + size)));
  console.log(
    `${batches.length} batches of ${size} events a round, ${rounds} rounds (+ a warm-up of ${Math.min(5, batches.length)} batches), ${WAYS.length} ways`,
  );

  const results = new Map<string, Tally[]>(WAYS.map(([name]) => [name, []]));
  for (let round = 0; round <= rounds; round++) {
    const warmUp = round === 0;
    const tallies = clients.map(() => ({
      events: 0,
      wallMs: 0,
      backendNs: 0,
      firstNs: 0,
      nodeUs: 0,
      batchMs: [] as number[],
    }));
    for (const [b, c] of (warmUp ? batches.slice(0, 5) : batches).entries()) {
      for (let k = 0; k < clients.length; k++) {
        const j = (k + b + round) % clients.length;
        const { name, way, client, pid } = clients[j];
        const cpu0 = cpuNs(pid);
        const node0 = process.cpuUsage();
        const t = tallies[j];
        const t0 = performance.now();
        const fresh = await way(client, c, `${name}/${round}`, () => (t.firstNs += cpuNs(pid) - cpu0));
        const ms = performance.now() - t0;
        const node = process.cpuUsage(node0);
        t.backendNs += cpuNs(pid) - cpu0;
        t.nodeUs += node.user + node.system;
        t.wallMs += ms;
        t.batchMs.push(ms);
        t.events += c.n;
        if (fresh.length !== c.n || fresh.includes(false))
          throw new Error(`${name}: a new key was not fresh`);
      }
    }
    if (!warmUp) clients.forEach(({ name }, j) => results.get(name)?.push(tallies[j]));
  }

  await check(admin, clients, batches[0]);

  const perEvent = (ts: Tally[], f: (t: Tally) => number) => median(ts.map((t) => f(t) / t.events));
  const unnestBackend = perEvent(results.get('unnest') ?? [], (t) => t.backendNs / 1000);
  const table = [
    [
      'way',
      'events/s',
      'wall µs/ev',
      'backend µs/ev',
      '1st step',
      '2nd step',
      'vs unnest',
      'node µs/ev',
      'ms/batch',
    ],
  ];
  for (const [name, ts] of results) {
    const wall = perEvent(ts, (t) => t.wallMs * 1000);
    const backend = perEvent(ts, (t) => t.backendNs / 1000);
    const first = perEvent(ts, (t) => t.firstNs / 1000);
    const split = ts[0].firstNs > 0;
    table.push([
      name,
      String(Math.round(1e6 / wall)),
      wall.toFixed(2),
      backend.toFixed(2),
      split ? first.toFixed(2) : '',
      split ? (backend - first).toFixed(2) : '',
      `${(((backend - unnestBackend) / unnestBackend) * 100).toFixed(0)} %`,
      perEvent(ts, (t) => t.nodeUs).toFixed(2),
      median(ts.flatMap((t) => t.batchMs)).toFixed(1),
    ]);
  }
  const widths = table[0].map((_h, k) => Math.max(...table.map((r) => r[k].length)));
  console.log("\nmedians over the rounds; ms/batch: the median batch's wall time");
  for (const r of table)
    console.log(r.map((v, k) => (k === 0 ? v.padEnd(widths[k]) : v.padStart(widths[k]))).join('  '));
} finally {
  await Promise.allSettled(clients.map(({ client }) => client.end()));
  await admin.end();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}

/**
 * Every way stored the same keys and raw rows as unnest (round 1's projects), and a batch
 * written again stores nothing and comes back all not fresh.
 */
async function check(db: pg.Pool, ways: typeof clients, first: Columns): Promise<void> {
  const { rows } = await db.query<{ project: string; keys: string; raw: string; digest: string }>(
    `SELECT e.project, (SELECT count(*) FROM tally.event_ids i WHERE i.project = e.project) AS keys,
            count(*) AS raw,
            md5(string_agg(row(${RAW_COLUMNS.filter((c) => c !== 'project').join(', ')})::text, ',' ORDER BY event_id)) AS digest
       FROM tally.events e WHERE e.project LIKE '%/1' GROUP BY e.project`,
  );
  const expected = rows.find((r) => r.project === 'unnest/1');
  const total = String(batchCount * size);
  for (const { name } of ways) {
    const r = rows.find((x) => x.project === `${name}/1`);
    if (r?.keys !== total || r.raw !== total || r.digest !== expected?.digest)
      throw new Error(
        `${name} stored other rows than unnest: ${JSON.stringify(r)} vs ${JSON.stringify(expected)}`,
      );
  }
  for (const { name, way, client } of ways) {
    const count = async () =>
      (await db.query<{ n: string }>('SELECT count(*) AS n FROM tally.events')).rows[0].n;
    const before = await count();
    const fresh = await way(client, first, `${name}/1`, () => undefined);
    if (fresh.includes(true) || (await count()) !== before) throw new Error(`${name} stored a duplicate`);
  }
  console.log('check: every way stored the same rows as unnest, and no duplicate');
}
