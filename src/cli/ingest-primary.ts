import type { Logger } from 'pino';
import type { Config } from '../config/load.ts';
import { serveWorkersClusterMetrics } from '../observability/cluster-metrics.ts';
import { WorkerPool } from './worker-pool.ts';
import type { Stoppable } from './process-role.ts';
import { TALLY_V8_FLAGS } from './v8-flags.ts';

/**
 * The primary of `tally ingest` with TALLY_INGEST_WORKERS > 1: runs that many ingest servers
 * (node:cluster) sharing SERVER_PORT, restarts one that dies (but exits 1 when a worker dies
 * before any has started serving), and answers their `/metrics` with the sum over all of them.
 * It serves nothing itself. SIGTERM reaches every worker, and each stops like a single
 * `tally ingest` (503 to new requests, Kafka's answer to those in flight).
 */
export function startIngestPrimary(config: Config, logger: Logger): Stoppable {
  serveWorkersClusterMetrics();
  const pool = new WorkerPool({
    role: 'ingest',
    size: config.raw.TALLY_INGEST_WORKERS,
    env: {},
    // Cluster workers do not inherit the launcher's flags when node was started without them.
    v8Flags: TALLY_V8_FLAGS,
    logger,
    // Like a single `tally ingest` that cannot start: exit non-zero rather than restart forever.
    // Said once here, however many workers failed the same way (a port in use fails them all).
    onStartFailure: (line) => {
      process.stderr.write(`tally: ${line ?? 'an ingest worker could not start (see the log)'}\n`);
      void pool.stop().finally(() => process.exit(1));
    },
  });
  pool.start();
  return { stop: () => pool.stop() };
}
