import { startKafkaCluster } from './cluster.ts';

/**
 * A real single-node Apache Kafka (KRaft, broker and controller in one JVM) for `npm run kafka`,
 * tests and benchmarks: a cluster of one (./cluster.ts).
 */

export { ensureKafkaJars, kafkaToolsAvailable } from './jvm.ts';

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

/** Starts a broker and resolves once it serves metadata. */
export async function startKafkaBroker(options: KafkaBrokerOptions): Promise<KafkaBroker> {
  const { port, controllerPort, ...rest } = options;
  const cluster = await startKafkaCluster({
    ...rest,
    brokers: 1,
    ports: port === undefined ? undefined : [port],
    controllerPorts: controllerPort === undefined ? undefined : [controllerPort],
  });
  const node = cluster.nodes[0];
  return {
    bootstrap: node.bootstrap,
    port: node.port,
    kill: (signal) => node.kill(signal),
    restart: () => node.restart(),
    stop: () => node.stop(),
  };
}
