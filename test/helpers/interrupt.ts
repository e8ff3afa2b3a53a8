import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * What a test file started that must not outlive an interrupted run.
 *
 * TRICKY: node:test runs no `t.after` hook when a test file's process gets SIGINT (Ctrl-C reaches
 * the whole process group) or SIGTERM (how the runner stops a file when the run is interrupted):
 * the process just dies. Embedded PostgreSQL runs in its own session (src/store/embedded-postgres.ts)
 * and `tally` children may not have been signalled, so they lived on, with their data
 * directories. Helpers register their cleanups here as well as with `t.after`; on the first
 * SIGINT or SIGTERM they run (newest first, each with a deadline), any child process still
 * running is stopped, and the process exits 130 without a word (the runner says what happened).
 */
const cleanups = new Set<() => unknown>();
const CLEANUP_MS = 20_000;
let interrupted = false;

/** Runs `cleanup` if the test file's process is interrupted first; the returned function forgets it. */
export function onInterrupt(cleanup: () => unknown): () => void {
  listen();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** `t.after(cleanup)`, and the same cleanup if the run is interrupted before the test ends. */
export function cleanupAfter(t: TestContext, cleanup: () => Promise<unknown>): void {
  const forget = onInterrupt(cleanup);
  t.after(async () => {
    forget();
    await cleanup();
  });
}

/** Stops `child` (SIGTERM, SIGKILL after a while) if the run is interrupted while it runs. */
export function stopOnInterrupt(child: ChildProcess): void {
  const forget = onInterrupt(() => stopChild(child.pid));
  child.once('exit', forget);
}

/**
 * Until the test ends: if the run is interrupted, stops the PostgreSQL server of the cluster in
 * `<dir>/pg` (if one runs) and removes `dir`. Registered as soon as `dir` exists, it covers an
 * interrupt while a server is still starting, before anything else was registered.
 */
export function guardTempDir(t: TestContext, dir: string): void {
  const forget = onInterrupt(async () => {
    await stopPostgres(join(dir, 'pg'));
    await rm(dir, { recursive: true, force: true });
  });
  t.after(forget);
}

/** Fast shutdown (SIGINT) of the server whose postmaster.pid is in `clusterDir`, if any. */
async function stopPostgres(clusterDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !signal(pid, 'SIGINT')) return;
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await sleep(50);
}

let listening = false;
function listen(): void {
  if (listening) return;
  listening = true;
  const stop = () => void interrupt();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function interrupt(): Promise<void> {
  if (interrupted) return;
  interrupted = true;
  // The runner may already be gone: nothing this process writes from now on matters.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const pending = [...cleanups].reverse();
  cleanups.clear();
  for (const cleanup of pending) {
    await Promise.race([Promise.resolve().then(cleanup), sleep(CLEANUP_MS)]).catch(() => undefined);
  }
  await Promise.all(childPids(process.pid).map((pid) => stopChild(pid)));
  process.exit(130);
}

async function stopChild(pid: number | undefined): Promise<void> {
  if (pid === undefined || !signal(pid, 'SIGTERM')) return;
  const deadline = Date.now() + 10_000;
  while (alive(pid)) {
    if (Date.now() > deadline) {
      signal(pid, 'SIGKILL');
      return;
    }
    await sleep(50);
  }
}

function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A child that exited but was not reaped yet is a zombie: gone for our purpose.
  return statFields(pid)?.[0] !== 'Z';
}

/** This process's children, from /proc (Linux); none elsewhere. */
function childPids(parent: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((pid) => Number(statFields(pid)?.[1]) === parent);
}

/** The fields of /proc/<pid>/stat after the command name: state, ppid, ... */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}
