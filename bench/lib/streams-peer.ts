import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { spawnTiedToUs } from '../../scripts/kafka/jvm.ts';
import { PROJECT_HEADER } from '../../src/kafka/codec.ts';
import { measureDrain, serverPids, type DrainWindow } from './drain-window.ts';
import type { EncodedMessage } from './kafka.ts';

/**
 * The Kafka Streams peer of scenario 3 (issue 24, bench/peers/streams/): its build, cached like
 * the broker's jars, a run that drains a topic and measures it, and the check that its rows in
 * PostgreSQL hold what the topic's events add up to.
 */

const peerDir = join(dirname(fileURLToPath(import.meta.url)), '../peers/streams');
const buildRoot = join(peerDir, 'build');
const MAIN_CLASS = 'dev.tally.peer.StreamsPeer';

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * The peer's class path, building it on first use: jars by `mvn dependency:copy-dependencies`,
 * classes by `javac`, in `build/<hash of pom.xml and sources>/`. Built in a temporary directory
 * and renamed, so the directory is complete whenever it exists; older builds are removed.
 */
export async function ensureStreamsPeerBuild(): Promise<string> {
  const sources = (await listFiles(join(peerDir, 'src'))).filter((f) => f.endsWith('.java'));
  const hash = createHash('sha256');
  for (const file of [join(peerDir, 'pom.xml'), ...sources]) {
    hash
      .update(relative(peerDir, file))
      .update('\0')
      .update(await readFile(file))
      .update('\0');
  }
  const name = hash.digest('hex').slice(0, 12);
  const dir = join(buildRoot, name);
  const classpath = `${join(dir, 'classes')}:${join(dir, 'lib')}/*`;
  if (existsSync(dir)) return classpath;
  await mkdir(buildRoot, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await run('mvn', [
      '-q',
      '-B',
      '-f',
      join(peerDir, 'pom.xml'),
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${join(tmp, 'lib')}`,
    ]);
    await run('javac', [
      '--release',
      '17',
      '-d',
      join(tmp, 'classes'),
      '-cp',
      `${join(tmp, 'lib')}/*`,
      ...sources,
    ]);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another run built the same sources first: its directory is just as good.
      if (!existsSync(dir)) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  for (const entry of await readdir(buildRoot)) {
    // ~90 MB of jars each: only the current sources' build is kept (not others' temporaries).
    if (entry !== name && !entry.includes('.tmp-'))
      await rm(join(buildRoot, entry), { recursive: true, force: true });
  }
  return classpath;
}

async function run(command: string, args: string[]): Promise<void> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`building the Kafka Streams peer: ${command} exited ${code}:\n${output}`);
}

/** `postgresql://user:password@host:port/db` as the JDBC driver's URL, batches rewritten. */
export function jdbcUrl(connectionString: string): string {
  const url = new URL(connectionString);
  const params = new URLSearchParams({
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    // One multi-row INSERT per batch instead of a statement per row.
    reWriteBatchedInserts: 'true',
  });
  return `jdbc:postgresql://${url.host}${url.pathname}?${params.toString()}`;
}

export interface PeerRun {
  bootstrap: string;
  databaseUrl: string;
  topic: string;
  /** Messages in the topic: the run ends when the peer's rows account for all of them. */
  total: number;
  /** PostgreSQL schema of the peer's tables (created by the peer). */
  schema: string;
  /** Stream threads; scenario 3 gives Tally's processor 2 workers. */
  threads: number;
  timeoutMs?: number;
  /** The Kafka Streams application id (its consumer group); a fresh one when absent. */
  applicationId?: string;
  /**
   * Fault injection for the tests: SIGKILL the peer once its rows cover this many events, and
   * resolve then (`committed` says how many they covered). A later run with the same applicationId resumes from what Kafka committed.
   */
  killWhenCovered?: number;
}

/**
 * Runs the peer on `run.topic` until its rows in PostgreSQL account for every message, then
 * stops it. The rate is input records per second from the first PostgreSQL commit that covers
 * any to the one that covers the last: the peer upserts, in the same transaction as each batch
 * of totals, each partition's next offset (`<schema>.progress`), and this polls their sum every
 * 20 ms, as scenario 3 polls Tally's positions table, and the CPU per event of the JVM,
 * PostgreSQL and the broker is over the same window (bench/lib/drain-window.ts). JVM start, the
 * group's join and the state stores' creation are before the first commit and not counted.
 */
export async function drainWithPeer(
  run: PeerRun,
  classpath: string,
): Promise<DrainWindow & { applicationId: string; seconds: number }> {
  const applicationId = run.applicationId ?? `bench-peer-${run.topic}-${randomBytes(3).toString('hex')}`;
  const stateDir = await mkdtemp(join(tmpdir(), 'tally-streams-peer-'));
  const logFile = join(stateDir, 'peer.log');
  const log = createWriteStream(logFile);
  const env = {
    PEER_BOOTSTRAP: run.bootstrap,
    PEER_TOPIC: run.topic,
    PEER_APPLICATION_ID: applicationId,
    PEER_JDBC_URL: jdbcUrl(run.databaseUrl),
    PEER_SCHEMA: run.schema,
    PEER_STATE_DIR: join(stateDir, 'state'),
    PEER_THREADS: String(run.threads),
    // The peer's PostgreSQL cadence (default 500 ms), overridable for an A/B: docs/benchmarks.md.
    ...(process.env.PEER_FLUSH_MS === undefined ? {} : { PEER_FLUSH_MS: process.env.PEER_FLUSH_MS }),
  };
  const child = spawnTiedToUs('env', [
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    'java',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
    '-cp',
    classpath,
    MAIN_CLASS,
  ]);
  // Two streams into one file: neither ends it; it ends once both are closed ('close', not
  // 'exit', after which output may still arrive).
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  child.once('close', () => log.end());
  const db = new pg.Pool({ connectionString: run.databaseUrl, max: 1 });
  try {
    const covered = async () => {
      try {
        const { rows } = await db.query<{ n: string }>(
          `SELECT coalesce(sum(next_offset), 0) AS n FROM ${run.schema}.progress WHERE application_id = $1`,
          [applicationId],
        );
        return Number(rows[0].n);
      } catch (err) {
        // The peer creates its tables as it starts.
        if ((err as { code?: string }).code === '42P01') return 0;
        throw err;
      }
    };
    const started = performance.now();
    const window = await measureDrain({
      total: run.killWhenCovered ?? run.total,
      committed: covered,
      // setpriv and env exec the JVM in place: the child's pid is the JVM's.
      pids: [child.pid!],
      servers: await serverPids(db),
      async check() {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(
            `the Kafka Streams peer exited (${child.exitCode ?? child.signalCode}):\n${await tail(logFile)}`,
          );
      },
      timeoutMs: run.timeoutMs ?? 600_000,
      timedOut: async (n) =>
        new Error(`the Kafka Streams peer covered only ${n} of ${run.total} events:\n${await tail(logFile)}`),
    });
    const seconds = (performance.now() - started) / 1000;
    if (run.killWhenCovered !== undefined) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    return { ...window, applicationId, seconds };
  } finally {
    await stop(child);
    await db.end();
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** Stops the peer: SIGTERM, then SIGKILL after 30 s. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no peer log)';
  }
}

/**
 * Totals keyed `events|minute|project|type`, `pages|minute|project|page_url` (page views) and
 * `users|minute|project` (distinct users), minute as epoch ms.
 */
export type Totals = Map<string, number>;

/** What the peer must find in `messages`, computed here from the encoded events themselves. */
export function referenceTotals(messages: Iterable<EncodedMessage>): Totals {
  const totals: Totals = new Map();
  const seen = new Set<string>();
  const add = (key: string) => totals.set(key, (totals.get(key) ?? 0) + 1);
  for (const m of messages) {
    const e = JSON.parse(m.value!.toString('utf8')) as {
      type: string;
      user_id: string;
      timestamp: string;
      page_url?: string;
    };
    let project = 'default';
    // toMessage (bench/lib/kafka.ts) gives its headers as a Map.
    if (m.headers instanceof Map) {
      for (const [k, v] of m.headers) if (k.toString() === PROJECT_HEADER) project = v.toString();
    }
    const ts = Date.parse(e.timestamp);
    const minute = ts - (((ts % 60_000) + 60_000) % 60_000);
    add(`events|${minute}|${project}|${e.type}`);
    if (e.type === 'page_view' && e.page_url !== undefined) add(`pages|${minute}|${project}|${e.page_url}`);
    const user = `${minute}|${project}|${e.user_id}`;
    if (!seen.has(user)) {
      seen.add(user);
      add(`users|${minute}|${project}`);
    }
  }
  return totals;
}

/** The peer's totals in PostgreSQL, its per-partition rows summed. */
export async function peerTotals(db: pg.Pool, schema: string): Promise<Totals> {
  const { rows } = await db.query<{ key: string; n: string }>(
    `SELECT 'events|' || (extract(epoch FROM minute) * 1000)::bigint || '|' || project || '|' || type AS key,
            sum(count) AS n
       FROM ${schema}.events_by_type GROUP BY minute, project, type
     UNION ALL
     SELECT 'pages|' || (extract(epoch FROM minute) * 1000)::bigint || '|' || project || '|' || page_url,
            sum(count)
       FROM ${schema}.page_views GROUP BY minute, project, page_url
     UNION ALL
     SELECT 'users|' || (extract(epoch FROM minute) * 1000)::bigint || '|' || project, sum(users)
       FROM ${schema}.minute_users GROUP BY minute, project`,
  );
  return new Map(rows.map((r) => [r.key, Number(r.n)]));
}

/** Up to `max` differences between two sets of totals, as lines; empty when they are equal. */
export function totalsDiff(want: Totals, got: Totals, max = 5): string[] {
  const lines: string[] = [];
  for (const key of new Set([...want.keys(), ...got.keys()])) {
    if (want.get(key) !== got.get(key)) lines.push(`${key}: want ${want.get(key)}, got ${got.get(key)}`);
    if (lines.length >= max) break;
  }
  return lines;
}
