import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stopOnInterrupt } from './interrupt.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface ChildTally {
  child: ChildProcess;
  url: string;
  output: () => string;
  /** Resolves with the exit code (or signal name) and how long the exit took after `since`. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `tally <args>` as a child process (the same Node as the tests) and waits for /health. */
export async function spawnTally(
  args: string[],
  env: Record<string, string>,
  port: number,
): Promise<ChildTally> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...process.env, TALLY_LOG_LEVEL: 'info', TALLY_GRPC_PORT: '0', ...env, SERVER_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  stopOnInterrupt(child);
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tally exited early (${child.exitCode}):\n${out}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`tally did not come up within 60 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => out, exited };
}

export interface TallyRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a one-shot `tally <args>` command (keys, users, …) to completion; warn-level logs unless `env` says. */
export function runTally(args: string[], env: Record<string, string>): Promise<TallyRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, TALLY_LOG_LEVEL: 'warn', ...env }, timeout: 120_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
