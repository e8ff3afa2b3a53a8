import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { TallyError } from '../../src/errors/tally-error.ts';
import {
  LOCK_FILE,
  acquireDataDirLock,
  processStartTime,
  type LockOwner,
} from '../../src/store/data-dir-lock.ts';

const LOCK_MODULE = new URL('../../src/store/data-dir-lock.ts', import.meta.url).href;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tally-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function writeLock(dir: string, owner: LockOwner): void {
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner));
}

function readLock(dir: string): LockOwner {
  return JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockOwner;
}

/** A process that has exited: its pid is free (until the OS reuses it). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.on('exit', r));
  return child.pid!;
}

function sleeper(t: TestContext): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 120_000)']);
  t.after(() => child.kill('SIGKILL'));
  return child;
}

async function refusal(dir: string): Promise<TallyError> {
  const err = await acquireDataDirLock(dir).then(
    () => assert.fail('the second acquire succeeded'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof TallyError);
  assert.equal(err.code, 'TALLY_ALREADY_RUNNING');
  return err;
}

test('one owner per data dir: a second acquire refuses naming the owner, release frees it', async (t) => {
  const dir = await tempDir(t);
  const lock = await acquireDataDirLock(dir);
  assert.equal(readLock(dir).pid, process.pid);
  assert.equal(
    (await refusal(dir)).message,
    `Tally is already running on ${dir} (pid ${process.pid}, starting)`,
  );
  lock.record(54321);
  assert.equal(
    (await refusal(dir)).message,
    `Tally is already running on ${dir} (pid ${process.pid}, port 54321)`,
  );
  lock.release();
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  const again = await acquireDataDirLock(dir);
  again.release();
  assert.deepEqual(readdirSync(dir), [], 'no temporary or takeover files are left');
});

test('a lock whose owner is dead, or unreadable, is taken over', async (t) => {
  const dir = await tempDir(t);
  writeLock(dir, { pid: await deadPid(), startedAt: '1', pgPort: 5 });
  const lock = await acquireDataDirLock(dir);
  assert.equal(readLock(dir).pid, process.pid);
  lock.release();

  writeFileSync(join(dir, LOCK_FILE), '');
  (await acquireDataDirLock(dir)).release();
  assert.deepEqual(readdirSync(dir), []);
});

test('a reused pid is not the owner: the start time must match too', async (t) => {
  const dir = await tempDir(t);
  const live = sleeper(t);
  const startedAt = processStartTime(live.pid!);
  if (startedAt === null) return t.skip('no /proc/<pid>/stat here');
  writeLock(dir, { pid: live.pid!, startedAt: String(Number(startedAt) - 1) });
  (await acquireDataDirLock(dir)).release();

  writeLock(dir, { pid: live.pid!, startedAt, pgPort: 7 });
  assert.equal((await refusal(dir)).message, `Tally is already running on ${dir} (pid ${live.pid}, port 7)`);
});

/**
 * Starts `n` processes that each wait for "go" on stdin, try to acquire the lock, print the
 * outcome, and hold what they got until stdin closes. Returns their outcomes.
 */
async function race(t: TestContext, dir: string, n: number): Promise<string[]> {
  const script = `
    import { acquireDataDirLock } from ${JSON.stringify(LOCK_MODULE)};
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => {
      try {
        await acquireDataDirLock(${JSON.stringify(dir)});
        process.stdout.write('won\\n');
      } catch (err) {
        process.stdout.write((err.code ?? String(err)) + '\\n');
      }
      process.stdin.once('end', () => process.exit(0));
    });`;
  const children = Array.from({ length: n }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    const waiters: (() => void)[] = [];
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      for (const w of waiters) w();
    });
    const lines = (count: number) =>
      new Promise<string[]>((resolve, reject) => {
        const check = () => {
          const got = out.split('\n').filter(Boolean);
          if (got.length >= count) resolve(got);
        };
        waiters.push(check);
        child.on('exit', () => reject(new Error(`racer exited early: ${out}`)));
        check();
      });
    return { child, lines };
  });
  await Promise.all(children.map((c) => c.lines(1)));
  for (const c of children) c.child.stdin.write('go\n');
  const outcomes = await Promise.all(children.map(async (c) => (await c.lines(2))[1]));
  for (const c of children) c.child.stdin.end();
  await Promise.all(children.map((c) => new Promise((r) => c.child.on('exit', r))));
  return outcomes.sort();
}

test('starts racing on a fresh data dir: exactly one wins', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  const outcomes = await race(t, dir, 6);
  assert.deepEqual(outcomes, [...Array<string>(5).fill('TALLY_ALREADY_RUNNING'), 'won']);
});

test('starts racing to take over a stale lock: exactly one wins', { timeout: 60_000 }, async (t) => {
  const dir = await tempDir(t);
  writeLock(dir, { pid: await deadPid(), startedAt: '1' });
  const outcomes = await race(t, dir, 6);
  assert.deepEqual(outcomes, [...Array<string>(5).fill('TALLY_ALREADY_RUNNING'), 'won']);
});
