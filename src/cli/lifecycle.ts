import { readFileSync } from 'node:fs';
import cluster from 'node:cluster';
import type { Logger } from 'pino';

const SHUTDOWN_DEADLINE_MS = 28_000;

const LAUNCHER_POLL_MS = 500;

/**
 * Wires SIGTERM, SIGINT, SIGHUP (a closed terminal) and fatal errors to one guarded `stop()`. A
 * clean stop exits 0; a stop that overruns the deadline (Kubernetes kills at 30 s) or a fatal
 * error exits 1.
 */
let shutdownStarted = false;

/**
 * True once a signal or a fatal error has asked this process to stop. Start-up steps that wait
 * (for Kafka, say) give up when it is, so a Ctrl-C during a slow start releases what the start
 * opened well inside the shutdown deadline.
 */
export function shutdownRequested(): boolean {
  return shutdownStarted;
}

export function handleShutdown(stop: () => Promise<void>, logger: Logger): (reason: string) => void {
  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string, exitCode: number) => {
    if (stopping) return;
    shutdownStarted = true;
    logger.info({ reason }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    stopping = stop().then(
      () => {
        logger.info('stopped');
        process.exit(exitCode);
      },
      (err: unknown) => {
        logger.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM', 0));
  process.on('SIGINT', () => shutdown('SIGINT', 0));
  // Node's default for SIGHUP is to exit at once, which would leave the embedded PostgreSQL
  // (its own session, started by pg_ctl) running.
  process.on('SIGHUP', () => shutdown('SIGHUP', 0));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    shutdown('uncaughtException', 1);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    shutdown('unhandledRejection', 1);
  });
  return (reason) => shutdown(reason, 0);
}

/**
 * In a cluster worker: when the primary dies (the IPC channel closes), stop like on SIGTERM.
 *
 * TRICKY: node:cluster's own 'disconnect' listener exits the worker at once (no flush, requests
 * in flight cut off) unless `exitedAfterDisconnect` is set; this listener runs before it.
 */
export function stopWhenOrphaned(): void {
  const worker = cluster.worker;
  if (worker === undefined) return;
  process.prependListener('disconnect', () => {
    worker.exitedAfterDisconnect = true;
    process.kill(process.pid, 'SIGTERM');
  });
}

/**
 * Under `npm start` / `npm run tally`: stop (with `stop`) when npm exits. npm forwards SIGINT
 * and SIGTERM only to the `sh -c` running its script, and that shell (dash) does not hand the
 * signal on; SIGHUP or SIGKILL to npm alone reaches neither. Either way Tally would be left
 * running with no parent, and the embedded PostgreSQL with it. Outside npm, a launcher that
 * exits (a shell running `tally start &`) is no reason to stop.
 */
export function stopWithNpm(stop: (reason: string) => void): void {
  if (process.env.npm_lifecycle_event === undefined) return;
  const parent = process.ppid;
  // Linux: when the parent is npm's `sh -c`, also watch the shell's own parent (npm). A shell that
  // exec'd Tally left npm itself as the parent, and npm's parent (a terminal, `nohup`) is no
  // reason to stop. Elsewhere only the parent is watched.
  const grandparent = SHELLS.has(commandOf(parent) ?? '') ? parentOf(parent) : undefined;
  const poll = setInterval(() => {
    if (process.ppid === parent && (grandparent === undefined || parentOf(parent) === grandparent)) return;
    clearInterval(poll);
    stop('npm exited');
  }, LAUNCHER_POLL_MS);
  poll.unref();
}

const SHELLS = new Set(['sh', 'dash', 'bash', 'ash', 'zsh', 'busybox']);

/** The command name of process `pid` (from /proc on Linux); undefined where that cannot be read. */
function commandOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  } catch {
    return undefined;
  }
}

/** The parent of process `pid` (from /proc on Linux); undefined where that cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (command) ": state, then ppid. The command itself may contain spaces or ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}
