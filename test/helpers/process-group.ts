import { spawn, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Process ids in process group `pgid` that are still alive (zombies, already dead, excluded). Linux /proc. */
export function livingInGroup(pgid: number): number[] {
  const living: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the parenthesised command name: state, ppid, pgrp, …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') living.push(Number(entry));
  }
  return living;
}

/** Whether process `pid` is alive (not gone, not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Whether an embedded PostgreSQL still runs on the data directory (its postmaster.pid is removed on a clean stop). */
export function postmasterRunning(dataDir: string): boolean {
  const pidFile = join(dataDir, 'pg', 'postmaster.pid');
  if (!existsSync(pidFile)) return false;
  return isAlive(Number(readFileSync(pidFile, 'utf8').split('\n')[0]));
}

/** Holds a port busy (127.0.0.1) until the test ends. */
export async function holdPort(t: TestContext): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export async function portBound(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(false)));
  });
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in its own process group and waits (up to `timeoutMs`) until it exits; killed
 * with its group, and failing, past that.
 */
export async function runToExit(
  command: string,
  args: string[],
  options: SpawnOptions & { timeoutMs?: number },
): Promise<Finished & { pid: number }> {
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const timeoutMs = options.timeoutMs ?? 90_000;
  const finished = await new Promise<Omit<Finished, 'stdout' | 'stderr'> | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    // 'close': the exit code and every byte the process (and its children) wrote.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  if (finished === undefined) {
    process.kill(-child.pid!, 'SIGKILL');
    throw new Error(
      `${command} ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`,
    );
  }
  return { ...finished, stdout, stderr, pid: child.pid! };
}

/** Polls `condition` every 100 ms until it holds; throws with `what` after `timeoutMs`. */
export async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** After a failed test: stops an embedded PostgreSQL left running on `dataDir` (fast shutdown), so none leaks. */
export async function stopLeftoverPostmaster(dataDir: string): Promise<void> {
  if (!postmasterRunning(dataDir)) return;
  const pid = Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGINT');
  await until('the leftover PostgreSQL to stop', () => !isAlive(pid), 30_000);
}
