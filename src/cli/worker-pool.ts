import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { HealthCheck } from '../observability/health.ts';

/**
 * What a worker tells the primary: a processor its status, at start and then every few seconds;
 * an ingest worker that it is serving.
 */
export type WorkerMessage =
  | {
      tally: 'status';
      /** A group member with a live session (false while Kafka is unreachable). */
      consuming: boolean;
    }
  | { tally: 'ready' }
  /** A worker that cannot start: its one-line reason (main.ts exitOnStartFailure), said once by the primary. */
  | { tally: 'start-failed'; line: string };

export interface WorkerPoolOptions {
  /** What the workers are, for the logs: `processor`, `ingest`. */
  role: string;
  size: number;
  env: Record<string, string>;
  /** V8 flags for the workers, before the primary's own execArgv (so flags given to node win). */
  v8Flags?: readonly string[];
  logger: Logger;
  /** Per worker, how long stop() waits before killing it (its own deadline is shorter). */
  stopTimeoutMs?: number;
  /**
   * Called, instead of a restart, when a worker dies before any worker ever said `ready`: the
   * role cannot start (bad configuration, Kafka unreachable), as a single process would exit.
   */
  onStartFailure?: (line: string | undefined) => void;
}

const RESTART_MIN_DELAY_MS = 200;
const RESTART_MAX_DELAY_MS = 10_000;
/** A worker that lived this long before dying restarts at once; quicker deaths back off. */
const HEALTHY_LIFETIME_MS = 30_000;

/**
 * The primary side of a role run as several processes (node:cluster): `tally process` (NUM_WORKERS
 * consumer group members) and `tally ingest` (TALLY_INGEST_WORKERS servers sharing SERVER_PORT).
 * A worker that dies is started again, with backoff when it keeps dying.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #workers = new Map<number, { worker: Worker; startedAt: number; consuming: boolean }>();
  #stopping = false;
  #quickDeaths = 0;
  #everReady = false;
  #restarts = new Set<NodeJS.Timeout>();

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
  }

  start(): void {
    cluster.setupPrimary({ execArgv: [...(this.#options.v8Flags ?? []), ...process.execArgv] });
    for (let i = 0; i < this.#options.size; i++) this.#fork();
  }

  /** Process ids of the running workers. */
  pids(): number[] {
    return [...this.#workers.values()].flatMap((w) => (w.worker.process.pid ? [w.worker.process.pid] : []));
  }

  readonly health: HealthCheck = {
    name: 'workers',
    check: () => {
      const consuming = [...this.#workers.values()].filter((w) => w.consuming).length;
      return Promise.resolve(consuming === this.#options.size ? 'ok' : consuming > 0 ? 'degraded' : 'down');
    },
  };

  /**
   * SIGTERM to every worker: each finishes what it has in flight (a processor commits its batch
   * and leaves the group) and exits. Resolves once all have exited cleanly; rejects, once all are
   * gone, when one had to be killed after `stopTimeoutMs` or exited non-zero, so the primary
   * exits 1 as a single process that overran its stop would.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const t of this.#restarts) clearTimeout(t);
    const timeout = this.#options.stopTimeoutMs ?? 25_000;
    const unclean: string[] = [];
    await Promise.all(
      [...this.#workers.values()].map(
        ({ worker }) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) {
              resolve();
              return;
            }
            const pid = worker.process.pid;
            let killed = false;
            const kill = setTimeout(() => {
              killed = true;
              worker.process.kill('SIGKILL');
            }, timeout);
            worker.once('exit', (code) => {
              clearTimeout(kill);
              if (killed) unclean.push(`pid ${pid} killed after ${timeout} ms`);
              else if (code !== null && code !== 0) unclean.push(`pid ${pid} exited ${code}`);
              resolve();
            });
            worker.process.kill('SIGTERM');
          }),
      ),
    );
    if (unclean.length > 0)
      throw new Error(`${this.#options.role} workers did not stop cleanly: ${unclean.join('; ')}`);
  }

  #fork(): void {
    const worker = cluster.fork(this.#options.env);
    const entry = {
      worker,
      startedAt: Date.now(),
      consuming: false,
      startFailure: undefined as string | undefined,
    };
    this.#workers.set(worker.id, entry);
    worker.on('message', (message: WorkerMessage) => {
      if (message?.tally === 'status') entry.consuming = message.consuming;
      if (message?.tally === 'ready') this.#everReady = true;
      if (message?.tally === 'start-failed') entry.startFailure = message.line;
    });
    worker.on('exit', (code, signal) => {
      this.#workers.delete(worker.id);
      if (this.#stopping) return;
      if (this.#options.onStartFailure !== undefined && !this.#everReady) {
        this.#options.logger.error(
          { pid: worker.process.pid, code, signal, reason: entry.startFailure },
          `${this.#options.role} worker failed to start; stopping`,
        );
        this.#options.onStartFailure(entry.startFailure);
        return;
      }
      const lived = Date.now() - entry.startedAt;
      this.#quickDeaths = lived >= HEALTHY_LIFETIME_MS ? 0 : this.#quickDeaths + 1;
      const delay =
        this.#quickDeaths === 0
          ? 0
          : Math.min(RESTART_MAX_DELAY_MS, RESTART_MIN_DELAY_MS * 2 ** (this.#quickDeaths - 1));
      this.#options.logger.warn(
        { pid: worker.process.pid, code, signal, reason: entry.startFailure, restartInMs: delay },
        `${this.#options.role} worker died; restarting it`,
      );
      const t = setTimeout(() => {
        this.#restarts.delete(t);
        if (!this.#stopping) this.#fork();
      }, delay);
      this.#restarts.add(t);
    });
  }
}
