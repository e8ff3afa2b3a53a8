import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { TALLY_V8_FLAGS } from '../../src/cli/v8-flags.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface Service {
  name: string;
  url: string;
  child: ChildProcess;
  /** Peak resident set size so far, in MB, of the process and its children (Linux: VmHWM). */
  peakRssMb(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Runs a node script (Tally's CLI by default) as its own process and waits for `readyPath`. An
 * exit the bench did not ask for is reported on stderr at once, with its code or signal and the
 * process's last stderr (a crash, an out-of-memory abort). With BENCH_LOG_DIR set, the process's
 * stdout (Tally's JSON log) and stderr go to `<BENCH_LOG_DIR>/<name>-<pid>.log` too (the directory
 * made if missing), at the level
 * BENCH_LOG_LEVEL names (default `warn`; `debug` adds the read model's catch-ups).
 */
export async function startService(opts: {
  name: string;
  args: string[];
  env: Record<string, string>;
  port: number;
  script?: string;
  readyPath?: string;
  /** Options for node itself, before the script (default for Tally: its V8 flags). */
  nodeArgs?: readonly string[];
}): Promise<Service> {
  // Tally runs with the flags its launchers give it (npm start, bin/tally.js, the image), plus
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=scratch/prof" to profile a scenario.
  const nodeArgs =
    opts.nodeArgs ??
    (opts.script === undefined
      ? [...TALLY_V8_FLAGS, ...(process.env.BENCH_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [])]
      : []);
  const logDir = process.env.BENCH_LOG_DIR;
  const child = spawn(process.execPath, [...nodeArgs, opts.script ?? MAIN, ...opts.args], {
    env: { ...process.env, TALLY_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  if (logDir === undefined) {
    child.stdout.resume();
  } else {
    mkdirSync(logDir, { recursive: true });
    const file = createWriteStream(join(logDir, `${opts.name.replaceAll(' ', '-')}-${child.pid}.log`));
    // Two sources, one file: neither ends it; the process's exit does.
    child.stdout.pipe(file, { end: false });
    child.stderr.pipe(file, { end: false });
    child.once('close', () => file.end());
  }
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (stopping) return;
    process.stderr.write(
      `bench: ${opts.name} (pid ${child.pid}) exited on its own: code ${code}, signal ${signal}; its last stderr:\n${stderr}\n`,
    );
  });
  const url = `http://127.0.0.1:${opts.port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${opts.name} exited early:\n${stderr}`);
    const ok = await fetch(`${url}${opts.readyPath ?? '/health'}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`${opts.name} did not come up:\n${stderr}`);
    await sleep(100);
  }
  return {
    name: opts.name,
    url,
    child,
    peakRssMb: () => peakRssMb(child.pid!),
    async stop() {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function peakRssMb(pid: number): Promise<number> {
  const pids = [pid, ...(await childrenOf(pid))];
  let peak = 0;
  for (const p of pids) {
    const status = await readFile(`/proc/${p}/status`, 'utf8').catch(() => '');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    peak = Math.max(peak, kb / 1024);
  }
  return peak;
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter(Boolean).map(Number);
}
