import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admin } from '@platformatic/kafka';
import { findFreePort } from '../../src/util/free-port.ts';

/**
 * A real single-node Apache Kafka (KRaft, broker + controller in one JVM) for `npm run kafka`,
 * tests and benchmarks. The jars come from Maven Central through `pom.xml` next to this file
 * and are cached in `libs/<hash of pom.xml>/`.
 */

const here = dirname(fileURLToPath(import.meta.url));
const pomPath = join(here, 'pom.xml');
const log4jConfig = join(here, 'log4j2.xml');
const libsRoot = join(here, 'libs');

export interface KafkaBrokerOptions {
  /** Client port (PLAINTEXT listener); a free one when absent. */
  port?: number;
  /** KRaft controller port; a free one when absent. */
  controllerPort?: number;
  /** Where the broker keeps its configuration and log segments; reused when it already holds a broker. */
  dataDir: string;
  /** Where `broker.log` (the JVM's stdout/stderr) goes; default `<dataDir>/logs`. */
  logDir?: string;
  /** Also copy the broker's output to this process's stdout (`npm run kafka`). */
  echo?: boolean;
  /** Address the listeners bind to and advertise; default 127.0.0.1. */
  host?: string;
  /** JVM heap ceiling in MiB; default 512. */
  heapMb?: number;
  /** How long to wait for the broker to serve metadata; default 120 s. */
  startTimeoutMs?: number;
}

export interface KafkaBroker {
  /** `host:port` for clients. */
  bootstrap: string;
  port: number;
  /** Sends a terminating `signal` (default SIGKILL) to the JVM and waits until it is gone (fault tests). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the broker again on the same ports and data, once it has been killed or stopped. */
  restart(): Promise<void>;
  /** Controlled shutdown (SIGTERM, SIGKILL after 30 s). Idempotent. */
  stop(): Promise<void>;
}

/** True when java and mvn can run here: the precondition for `startKafkaBroker`. */
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

/** Starts a broker and resolves once it serves metadata. */
export async function startKafkaBroker(options: KafkaBrokerOptions): Promise<KafkaBroker> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await findFreePort());
  const controllerPort = options.controllerPort ?? (await findFreePort());
  const dataDir = resolve(options.dataDir);
  const logDir = resolve(options.logDir ?? join(dataDir, 'logs'));
  const logFile = join(logDir, 'broker.log');
  const bootstrap = `${host}:${port}`;
  const libs = await ensureKafkaJars();
  await mkdir(logDir, { recursive: true });
  const config = join(dataDir, 'server.properties');
  await writeFile(config, serverProperties({ host, port, controllerPort, logDirs: join(dataDir, 'log') }));
  await formatStorage(libs, config, join(dataDir, 'log'));

  let child: ChildProcess | undefined;
  let log: WriteStream | undefined;
  const launch = async () => {
    log = createWriteStream(logFile, { flags: 'a' });
    const java = [
      `-Xmx${options.heapMb ?? 512}m`,
      '-Xms64m',
      '-XX:+UseSerialGC',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${log4jConfig}`,
      '-cp',
      `${libs}/*`,
      'kafka.Kafka',
      config,
    ];
    child = spawnTiedToUs('java', java);
    const c = child;
    const sink = log;
    for (const stream of [c.stdout, c.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        sink.write(chunk);
        if (options.echo === true) process.stdout.write(chunk);
      });
    }
    c.once('exit', () => sink.end());
    await waitUntilServing(bootstrap, c, logFile, options.startTimeoutMs ?? 120_000);
  };
  const kill = async (signal: NodeJS.Signals, graceMs = 30_000) => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  await launch();
  return {
    bootstrap,
    port,
    kill: (signal = 'SIGKILL') => kill(signal),
    restart: async () => {
      await kill('SIGKILL');
      await launch();
    },
    stop: () => kill('SIGTERM'),
  };
}

function serverProperties(p: {
  host: string;
  port: number;
  controllerPort: number;
  logDirs: string;
}): string {
  return [
    '# Written by scripts/kafka/broker.ts on every start.',
    'process.roles=broker,controller',
    'node.id=1',
    // A static quorum: the controller's address lives here, not in the log, so the port may change.
    `controller.quorum.voters=1@${p.host}:${p.controllerPort}`,
    `listeners=PLAINTEXT://${p.host}:${p.port},CONTROLLER://${p.host}:${p.controllerPort}`,
    `advertised.listeners=PLAINTEXT://${p.host}:${p.port}`,
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${p.logDirs}`,
    'num.partitions=1',
    'num.network.threads=2',
    'num.io.threads=4',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'min.insync.replicas=1',
    // Tally creates its topics (and their .dlq) itself, with the right settings.
    'auto.create.topics.enable=false',
    'group.initial.rebalance.delay.ms=0',
    // Lets tests use short session timeouts so a killed consumer's partitions move quickly.
    'group.min.session.timeout.ms=1000',
    // After a kill -9 the restarted broker waits for its old registration to expire (default 9 s).
    'broker.heartbeat.interval.ms=500',
    'broker.session.timeout.ms=3000',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    '',
  ].join('\n');
}

/** Formats the log directory once; a directory that already holds a broker is left alone. */
async function formatStorage(libs: string, config: string, logDirs: string): Promise<void> {
  if (existsSync(join(logDirs, 'meta.properties'))) return;
  // A Kafka cluster id is 16 random bytes in URL-safe base64 without padding.
  const clusterId = randomBytes(16).toString('base64url');
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
function spawnTiedToUs(command: string, args: string[]): ChildProcess {
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

async function waitUntilServing(
  bootstrap: string,
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
      const metadata = await admin.metadata({ topics: [] });
      if (metadata.brokers.size > 0) return;
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
