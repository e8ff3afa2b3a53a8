import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';

/**
 * What every Kafka JVM of `npm run kafka`, the tests and the benchmarks shares: the jars (from
 * Maven Central through `pom.xml` next to this file, cached in `libs/<hash of pom.xml>/`), the
 * storage format step, a child process tied to ours, and the wait until a node serves metadata.
 */

const here = dirname(fileURLToPath(import.meta.url));
const pomPath = join(here, 'pom.xml');
export const log4jConfig = join(here, 'log4j2.xml');
const libsRoot = join(here, 'libs');

/** True when java and mvn can run here: the precondition for starting a broker. */
export function kafkaToolsAvailable(): boolean {
  const ok = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 30_000 });
    return r.error === undefined && r.status === 0;
  };
  return ok('java', ['-version']) && ok('mvn', ['--version']);
}

/**
 * The directory holding the broker's jars, downloading them with mvn on first use. Concurrent
 * first uses each download into their own temporary directory and the first rename wins, so
 * the directory is complete whenever it exists.
 */
export async function ensureKafkaJars(root: string = libsRoot): Promise<string> {
  const pom = await readFile(pomPath);
  const dir = join(root, createHash('sha256').update(pom).digest('hex').slice(0, 12));
  if (existsSync(dir)) return dir;
  await mkdir(root, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const mvn = spawn(
      'mvn',
      ['-q', '-B', '-f', pomPath, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    mvn.stdout.on('data', (d: Buffer) => (output += d.toString()));
    mvn.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const [code] = (await once(mvn, 'close')) as [number | null];
    if (code !== 0) throw new Error(`mvn could not fetch the Kafka jars (exit ${code}):\n${output}`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // Another process finished first: its directory is just as good.
      if (!existsSync(dir)) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** A Kafka cluster id: 16 random bytes in URL-safe base64 without padding. */
export function newClusterId(): string {
  return randomBytes(16).toString('base64url');
}

/** Formats a node's log directory once; a directory that already holds a node is left alone. */
export function formatStorage(libs: string, config: string, logDirs: string, clusterId: string): void {
  if (existsSync(join(logDirs, 'meta.properties'))) return;
  const result = spawnSync(
    'java',
    [
      `-Dlog4j2.configurationFile=${log4jConfig}`,
      '-cp',
      `${libs}/*`,
      'kafka.tools.StorageTool',
      'format',
      // TRICKY: one id in 64 starts with '-', which the tool's argument parser would take for
      // an option if passed as a separate word; `--cluster-id=` keeps it a value.
      `--cluster-id=${clusterId}`,
      '-c',
      config,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (result.status !== 0) {
    throw new Error(
      `formatting Kafka storage failed: ${result.error?.message ?? ''}${result.stdout}${result.stderr}`,
    );
  }
}

/**
 * Spawns `command` so that it dies with this process even on SIGKILL (setpriv's parent-death
 * signal), so a crashed test run leaves no broker behind on a shared machine.
 */
export function spawnTiedToUs(command: string, args: string[]): ChildProcess {
  const tie = existsSync('/usr/bin/setpriv') || existsSync('/bin/setpriv');
  const child = tie
    ? spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', command, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  child.once('exit', () => process.removeListener('exit', onExit));
  return child;
}

/**
 * Resolves once the node at `bootstrap` answers a metadata request listing itself (`nodeId`) and
 * at least `brokers` registered brokers; throws when the JVM exits first or time runs out.
 */
export async function waitUntilServing(
  bootstrap: string,
  wanted: { nodeId: number; brokers: number },
  child: ChildProcess,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `Kafka exited during start (${child.exitCode ?? child.signalCode}):\n${await tail(logFile)}`,
      );
    }
    const admin = new Admin({
      clientId: 'tally-broker-probe',
      bootstrapBrokers: [bootstrap],
      retries: 0,
      connectTimeout: 1_000,
      timeout: 2_000,
    });
    try {
      const { brokers } = await admin.metadata({ topics: [] });
      if (brokers.has(wanted.nodeId) && brokers.size >= wanted.brokers) return;
      lastError = `${brokers.size} of ${wanted.brokers} brokers registered`;
    } catch (err) {
      lastError = err;
    } finally {
      await admin.close().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill('SIGKILL');
  throw new Error(
    `Kafka did not serve metadata on ${bootstrap} within ${timeoutMs} ms (${String(lastError)}):\n${await tail(logFile)}`,
  );
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n');
  } catch {
    return '(no broker log)';
  }
}
