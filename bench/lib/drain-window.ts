import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { ownChild, parentPid, treeCpuSeconds } from './cpu.ts';
import type { Row } from './report.ts';

/**
 * The measured window of a drain of a pre-filled topic (scenario 3, its scaling runs, its Kafka
 * Streams peer): events/s and the CPU each kind of process spent per event, both from the first
 * commit seen to the one covering the last event, so that the cost is of the events the rate
 * counts (issue 24).
 */

/** CPU seconds of each kind of process (at one moment, or per event). */
export interface CpuSample {
  /** The drainer: the `tally process` instances (primaries and workers), or the peer's JVM. */
  process: number;
  postgres: number;
  broker: number;
}

/** The servers every drain loads, as pids on this machine; undefined when not found there. */
export interface ServerPids {
  postgres: number | undefined;
  broker: number | undefined;
}

export interface DrainWindow {
  /** Events/s over the window; NaN when it held no events (all committed before it or in one poll). */
  rate: number;
  /** µs of CPU per event committed in the window, by kind of process; NaN likewise. */
  cpuUs: CpuSample;
  /** Events committed inside the window. */
  measured: number;
  /** Events committed when the drain ended: at least its total. */
  committed: number;
}

export interface Drain {
  /** Events to wait for. */
  total: number;
  /** Events committed so far, as a reader of PostgreSQL sees them. */
  committed: () => Promise<number>;
  /** The roots of the process trees that drain (each `tally process` instance, or the peer's JVM). */
  pids: readonly number[];
  servers: ServerPids;
  /** Whether a commit seen now may open the window (default: any), e.g. once a whole group has joined. */
  ready?: () => boolean;
  /** Called after each poll short of the total: throws to give up (the drainer died). */
  check?: (committed: number) => Promise<void>;
  timeoutMs: number;
  /** The error when `timeoutMs` passes before the total is committed. */
  timedOut: (committed: number) => Error | Promise<Error>;
}

const POLL_MS = 20;
const NONE: CpuSample = { process: Number.NaN, postgres: Number.NaN, broker: Number.NaN };

/**
 * The PostgreSQL server (the parent of one of `db`'s backends) and the bench's Kafka broker (a
 * JVM this process started). Both run on this machine in the bench; elsewhere their figures are NaN.
 */
export async function serverPids(db: pg.Pool): Promise<ServerPids> {
  const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { postgres: await parentPid(rows[0].pid), broker: await ownChild('kafka.Kafka') };
}

async function sample(pids: readonly number[], servers: ServerPids): Promise<CpuSample> {
  const tree = async (pid: number | undefined) => (pid === undefined ? Number.NaN : treeCpuSeconds(pid));
  const [trees, postgres, broker] = await Promise.all([
    Promise.all(pids.map(treeCpuSeconds)),
    tree(servers.postgres),
    tree(servers.broker),
  ]);
  return { process: trees.reduce((a, b) => a + b, 0), postgres, broker };
}

/**
 * Polls `drain.committed` every 20 ms until it reaches `drain.total`. The window opens at the
 * first poll that sees a commit (once `ready`) and closes at the one that sees the total; the CPU
 * of the drainer's process trees and of the servers is sampled at both, so start-up and the
 * group's join count in neither the rate nor the cost.
 */
export async function measureDrain(drain: Drain): Promise<DrainWindow> {
  const deadline = performance.now() + drain.timeoutMs;
  let first: { at: number; n: number; cpu: CpuSample } | undefined;
  for (;;) {
    const n = await drain.committed();
    const at = performance.now();
    if (first === undefined && n > 0 && (drain.ready?.() ?? true))
      first = { at, n, cpu: await sample(drain.pids, drain.servers) };
    if (n >= drain.total) {
      if (first === undefined || n === first.n)
        return { rate: Number.NaN, cpuUs: NONE, measured: 0, committed: n };
      const start = first;
      const last = await sample(drain.pids, drain.servers);
      const events = n - start.n;
      const perEvent = (k: keyof CpuSample) => ((last[k] - start.cpu[k]) * 1e6) / events;
      return {
        rate: events / ((at - start.at) / 1000),
        cpuUs: { process: perEvent('process'), postgres: perEvent('postgres'), broker: perEvent('broker') },
        measured: events,
        committed: n,
      };
    }
    await drain.check?.(n);
    if (at > deadline) throw await drain.timedOut(n);
    await sleep(POLL_MS);
  }
}

/** How rows and log lines name a drainer: `tally process` unless given. */
export interface Drainer {
  name: string;
  /** Which of its processes count. */
  which: string;
}

export const TALLY_PROCESS: Drainer = { name: 'tally process', which: 'its primaries and workers' };

const kinds = (drainer: Drainer) =>
  [
    ['process', drainer.name, drainer.which],
    ['postgres', 'PostgreSQL', 'the server and every backend'],
    ['broker', 'Kafka broker', 'the JVM'],
  ] as const;

/**
 * One row per kind of process: µs of CPU per event `during` the drain ("with 1 instance"), with
 * the targets that apply. bench/lib/capacity-model.ts reads scaling's rows by these names.
 */
export function cpuRows(
  scenario: string,
  during: string,
  cpuUs: CpuSample,
  opts: { drainer?: Drainer; targets?: Partial<Record<keyof CpuSample, string>> } = {},
): Row[] {
  const targets = opts.targets ?? {};
  return kinds(opts.drainer ?? TALLY_PROCESS).map(([kind, name, which]) => ({
    scenario,
    metric: `${name}: µs of CPU per event ${during}, ${which}, over the same window`,
    tally: Math.round(cpuUs[kind] * 10) / 10,
    unit: 'µs/event',
    ...(targets[kind] === undefined ? {} : { target: targets[kind] }),
  }));
}

/** The three figures of `cpuUs` as a log line's words. */
export function cpuText(cpuUs: CpuSample, drainer: Drainer = TALLY_PROCESS): string {
  const us = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
  return `µs of CPU per event: ${drainer.name} ${us(cpuUs.process)}, PostgreSQL ${us(cpuUs.postgres)}, Kafka broker ${us(cpuUs.broker)}`;
}
