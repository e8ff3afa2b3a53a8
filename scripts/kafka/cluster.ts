import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Admin, Connection, describeQuorumV2 } from '@platformatic/kafka';
import { findFreePort } from '../../src/util/free-port.ts';
import {
  ensureKafkaJars,
  formatStorage,
  log4jConfig,
  newClusterId,
  spawnTiedToUs,
  waitUntilServing,
} from './jvm.ts';

/**
 * A real Apache Kafka cluster in KRaft mode for `npm run kafka`, tests and benchmarks: `brokers`
 * JVMs, each a broker and a controller voter (combined mode), on free ports of one host. From
 * three nodes on, topics are replicated three times with min.insync.replicas=2, so one node may
 * die without losing an acknowledged (acks=all) message and two dead refuse writes.
 */

export interface KafkaClusterOptions {
  /** Number of nodes, 1..9. */
  brokers: number;
  /** Node i (1-based) keeps its data in `<dataDir>/node-<i>`; a one-node cluster in `dataDir` itself. */
  dataDir: string;
  /** Client port (PLAINTEXT listener) of each node; free ones when absent. */
  ports?: readonly number[];
  /** KRaft controller port of each node; free ones when absent. */
  controllerPorts?: readonly number[];
  /** Where a one-node cluster's `broker.log` goes (default `<dataDir>/logs`); nodes of more use `<node dir>/logs`. */
  logDir?: string;
  /** Also copy the nodes' output to this process's stdout (`npm run kafka`). */
  echo?: boolean;
  /** Address the listeners bind to and advertise; default 127.0.0.1. */
  host?: string;
  /** JVM heap ceiling of each node in MiB; default 512. */
  heapMb?: number;
  /** How long to wait for a node to serve metadata; default 120 s. */
  startTimeoutMs?: number;
}

export interface KafkaNode {
  /** node.id, 1-based. */
  readonly id: number;
  /** `host:port` of this node's client listener. */
  readonly bootstrap: string;
  readonly port: number;
  /** True while its JVM runs (a paused one too). */
  readonly running: boolean;
  /** True while frozen by pause(). */
  readonly paused: boolean;
  /** Sends a terminating `signal` (default SIGKILL) and waits until the JVM is gone (fault tests). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports and data once killed or stopped; resolves when it serves metadata. */
  restart(): Promise<void>;
  /** Controlled shutdown (SIGTERM, SIGKILL after 30 s). Idempotent. */
  stop(): Promise<void>;
  /** Freezes the JVM (SIGSTOP): to the others it looks cut off from the network. */
  pause(): void;
  /** Thaws a paused JVM (SIGCONT). */
  resume(): void;
}

export interface KafkaCluster {
  /** Every node's `host:port`, comma-joined: what KAFKA_BROKERS takes. */
  readonly bootstrap: string;
  /** Every node's `host:port`: what the clients' bootstrapBrokers take. */
  readonly brokers: readonly string[];
  readonly nodes: readonly KafkaNode[];
  /** The node with this id. */
  node(id: number): KafkaNode;
  /** node.id of the leader of `partition` of `topic`, as a running, unfrozen node's metadata says now. */
  leaderOf(topic: string, partition: number): Promise<number>;
  /** node.id of the active controller: the leader of the KRaft metadata quorum. */
  activeController(): Promise<number>;
  /** Stops every node (SIGTERM, SIGKILL after `graceMs`, default 30 s). Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts every node at once (a quorum needs a majority of them) and resolves when all serve metadata. */
export async function startKafkaCluster(options: KafkaClusterOptions): Promise<KafkaCluster> {
  const count = options.brokers;
  if (!Number.isInteger(count) || count < 1 || count > 9) {
    throw new RangeError(`brokers must be an integer from 1 to 9, got ${count}`);
  }
  const host = options.host ?? '127.0.0.1';
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  // One draw for both kinds, so no port is handed out twice.
  const free = await freePorts(2 * count);
  const ports = options.ports ?? free.slice(0, count);
  const controllerPorts = options.controllerPorts ?? free.slice(count);
  if (ports.length !== count || controllerPorts.length !== count) {
    throw new RangeError(`give one client and one controller port per node (${count})`);
  }
  const dataDir = resolve(options.dataDir);
  const nodeDirs = ids.map((id) => (count === 1 ? dataDir : join(dataDir, `node-${id}`)));
  const libs = await ensureKafkaJars();
  // Nodes formatted by an earlier run keep their cluster id; new ones must join it.
  const clusterId = (await existingClusterId(nodeDirs)) ?? newClusterId();
  const voters = ids.map((id) => `${id}@${host}:${controllerPorts[id - 1]}`).join(',');
  const nodes = ids.map((id) => {
    const dir = nodeDirs[id - 1];
    return new Node({
      id,
      host,
      port: ports[id - 1],
      controllerPort: controllerPorts[id - 1],
      dir,
      logDir: resolve(count === 1 && options.logDir !== undefined ? options.logDir : join(dir, 'logs')),
      voters,
      clusterSize: count,
      clusterId,
      libs,
      heapMb: options.heapMb ?? 512,
      echo: options.echo === true,
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
    });
  });
  const stop = async (graceMs = 30_000) => {
    await Promise.all(nodes.map((n) => n.terminate('SIGTERM', graceMs)));
  };
  // Every start settles before any cleanup, so no JVM is launched after its node was terminated.
  const started = await Promise.allSettled(nodes.map((n) => n.start()));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(nodes.map((n) => n.terminate('SIGKILL', 0)));
    throw failed.reason;
  }
  // A frozen node would still name itself leader, or never answer: only live ones are asked.
  const answering = () => nodes.filter((n) => n.running && !n.paused);
  const runningBootstraps = () => {
    const up = answering();
    return (up.length > 0 ? up : nodes).map((n) => n.bootstrap);
  };
  return {
    bootstrap: nodes.map((n) => n.bootstrap).join(','),
    brokers: nodes.map((n) => n.bootstrap),
    nodes,
    node(id) {
      const found = nodes.find((n) => n.id === id);
      if (found === undefined) throw new RangeError(`no node ${id} in a cluster of ${count}`);
      return found;
    },
    async leaderOf(topic, partition) {
      const admin = new Admin({ clientId: 'tally-cluster-probe', bootstrapBrokers: runningBootstraps() });
      try {
        const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
        const leader = metadata.topics.get(topic)?.partitions[partition]?.leader;
        if (leader === undefined) throw new Error(`no partition ${partition} of ${topic} in the metadata`);
        return leader;
      } finally {
        await admin.close().catch(() => undefined);
      }
    },
    activeController: () => quorumLeader(answering()),
    stop,
  };
}

interface NodeSettings {
  id: number;
  host: string;
  port: number;
  controllerPort: number;
  dir: string;
  logDir: string;
  voters: string;
  clusterSize: number;
  clusterId: string;
  libs: string;
  heapMb: number;
  echo: boolean;
  startTimeoutMs: number;
}

class Node implements KafkaNode {
  readonly #s: NodeSettings;
  #child: ChildProcess | undefined;
  #paused = false;
  #started = false;

  constructor(settings: NodeSettings) {
    this.#s = settings;
  }

  get id(): number {
    return this.#s.id;
  }
  get port(): number {
    return this.#s.port;
  }
  get bootstrap(): string {
    return `${this.#s.host}:${this.#s.port}`;
  }
  get running(): boolean {
    const c = this.#child;
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }
  get paused(): boolean {
    return this.#paused;
  }

  /** Writes the configuration, formats the storage once, launches the JVM and waits until it serves. */
  async start(): Promise<void> {
    const s = this.#s;
    const config = join(s.dir, 'server.properties');
    const logDirs = join(s.dir, 'log');
    await mkdir(s.logDir, { recursive: true });
    await writeFile(config, serverProperties(s, logDirs));
    formatStorage(s.libs, config, logDirs, s.clusterId);
    const logFile = join(s.logDir, 'broker.log');
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawnTiedToUs('java', [
      `-Xmx${s.heapMb}m`,
      '-Xms64m',
      '-XX:+UseSerialGC',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${log4jConfig}`,
      '-cp',
      `${s.libs}/*`,
      'kafka.Kafka',
      config,
    ]);
    this.#child = child;
    this.#paused = false;
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        log.write(chunk);
        if (s.echo) process.stdout.write(chunk);
      });
    }
    // 'close', not 'exit': output may still arrive after the exit, and a write after end throws.
    child.once('close', () => log.end());
    // A restarted node waits only for itself: the others may be down on purpose.
    const brokers = this.#started ? 1 : s.clusterSize;
    this.#started = true;
    await waitUntilServing(this.bootstrap, { nodeId: s.id, brokers }, child, logFile, s.startTimeoutMs);
  }

  async terminate(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const c = this.#child;
    this.#child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill(signal);
    // A frozen JVM would hold a SIGTERM until thawed.
    if (this.#paused) c.kill('SIGCONT');
    this.#paused = false;
    const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.terminate(signal, 30_000);
  }

  async restart(): Promise<void> {
    await this.terminate('SIGKILL', 0);
    await this.start();
  }

  stop(): Promise<void> {
    return this.terminate('SIGTERM', 30_000);
  }

  pause(): void {
    if (!this.running) throw new Error(`node ${this.id} is not running`);
    this.#child?.kill('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    if (!this.running) throw new Error(`node ${this.id} is not running`);
    this.#child?.kill('SIGCONT');
    this.#paused = false;
  }
}

function serverProperties(s: NodeSettings, logDirs: string): string {
  // One node holds one copy; from three on, three copies of which two must acknowledge a write.
  const replicas = Math.min(3, s.clusterSize);
  const minIsr = replicas >= 3 ? 2 : 1;
  return [
    '# Written by scripts/kafka/cluster.ts on every start.',
    'process.roles=broker,controller',
    `node.id=${s.id}`,
    // A static quorum: the controllers' addresses live here, not in the log, so ports may change.
    `controller.quorum.voters=${s.voters}`,
    `listeners=PLAINTEXT://${s.host}:${s.port},CONTROLLER://${s.host}:${s.controllerPort}`,
    `advertised.listeners=PLAINTEXT://${s.host}:${s.port}`,
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${logDirs}`,
    'num.partitions=1',
    'num.network.threads=2',
    'num.io.threads=4',
    `default.replication.factor=${replicas}`,
    `min.insync.replicas=${minIsr}`,
    // An out-of-sync replica never becomes leader: that would drop acknowledged messages.
    'unclean.leader.election.enable=false',
    `offsets.topic.replication.factor=${replicas}`,
    'offsets.topic.num.partitions=10',
    `transaction.state.log.replication.factor=${replicas}`,
    `transaction.state.log.min.isr=${minIsr}`,
    `share.coordinator.state.topic.replication.factor=${replicas}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    // Tally creates its topics (and their .dlq) itself, with the right settings.
    'auto.create.topics.enable=false',
    'group.initial.rebalance.delay.ms=0',
    // Lets tests use short session timeouts so a killed consumer's partitions move quickly.
    'group.min.session.timeout.ms=1000',
    // After a kill -9 the restarted node waits for its old registration to expire (default 9 s),
    // and a dead node's partitions move to other leaders only once it has expired.
    'broker.heartbeat.interval.ms=500',
    'broker.session.timeout.ms=3000',
    // A follower silent this long leaves the ISR (default 30 s): fault tests need it sooner.
    'replica.lag.time.max.ms=5000',
    '',
  ].join('\n');
}

async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await findFreePort());
  return [...ports];
}

async function existingClusterId(nodeDirs: readonly string[]): Promise<string | undefined> {
  for (const dir of nodeDirs) {
    const meta = join(dir, 'log', 'meta.properties');
    if (!existsSync(meta)) continue;
    const id = /^cluster\.id=(.+)$/m.exec(await readFile(meta, 'utf8'))?.[1];
    if (id !== undefined) return id.trim();
  }
  return undefined;
}

/** Asks running nodes, one after another, who leads the `__cluster_metadata` quorum. */
async function quorumLeader(running: readonly KafkaNode[]): Promise<number> {
  let lastError: unknown = new Error('no node is running');
  for (const node of running) {
    const connection = new Connection('tally-cluster-probe');
    try {
      const [host, port] = splitHostPort(node.bootstrap);
      await connection.connect(host, port);
      const answer = await describeQuorumV2.api.async(connection, [
        { topicName: '__cluster_metadata', partitions: [{ partitionIndex: 0 }] },
      ]);
      const leader = answer.topics[0]?.partitions[0]?.leaderId;
      if (leader !== undefined && leader >= 0) return leader;
      lastError = new Error(`node ${node.id} knows no quorum leader now`);
    } catch (err) {
      lastError = err;
    } finally {
      await connection.close().catch(() => undefined);
    }
  }
  throw lastError;
}

function splitHostPort(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}
