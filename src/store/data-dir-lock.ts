import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TallyError } from '../errors/tally-error.ts';

/** Who runs the embedded PostgreSQL of a data directory, as `<dataDir>/tally.lock` records it. */
export interface LockOwner {
  pid: number;
  /** The process's start time (Linux: clock ticks since boot), so a reused pid is not taken for it. */
  startedAt: string | null;
  /** The embedded PostgreSQL's port, once it listens. */
  pgPort?: number;
}

export const LOCK_FILE = 'tally.lock';
/** How long a start waits for another start that is taking over the same stale lock. */
const TAKEOVER_WAIT_MS = 10_000;
const POLL_MS = 50;

/**
 * The start time of process `pid` (field 22 of /proc/<pid>/stat), or null where it cannot be
 * read (not Linux, or hidden). Together with the pid it names one process: pids are reused, start
 * times of the same pid are not (a container's Tally is pid 1 on every run).
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True while the process the lock names is alive (and is that process, not a reuse of its pid). */
export function isOwnerAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: alive, owned by another user.
    if ((err as { code?: string }).code !== 'EPERM') return false;
  }
  if (owner.startedAt === null) return true;
  const now = processStartTime(owner.pid);
  return now === null || now === owner.startedAt;
}

/** The exclusive right of one process to run the embedded PostgreSQL of a data directory. */
export class DataDirLock {
  readonly #path: string;
  readonly #owner: LockOwner;
  #released = false;

  constructor(path: string, owner: LockOwner) {
    this.#path = path;
    this.#owner = owner;
  }

  /** Records the PostgreSQL port, for the message a second start prints. */
  record(pgPort: number): void {
    this.#owner.pgPort = pgPort;
    replaceAtomically(this.#path, this.#owner);
  }

  /** Removes the lock if it is still this process's (idempotent). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const current = readOwner(this.#path);
    if (typeof current === 'object' && sameProcess(current, this.#owner)) rmQuietly(this.#path);
  }
}

/**
 * Makes this process the owner of `dataDir`'s embedded PostgreSQL, or throws
 * TALLY_ALREADY_RUNNING naming the live owner. A lock whose owner is dead (killed, crashed,
 * the machine rebooted) is taken over.
 *
 * TRICKY: two starts may race. A fresh lock appears whole and only once: it is written to a
 * file of its own and hard-linked into place, which fails if the name exists. Taking over a
 * stale lock is serialised per stale content: the taker first creates
 * `tally.lock.takeover-<hash of that content>` exclusively, checks the lock still holds that
 * content, and only then renames its own lock over it. A second taker of the same stale lock
 * fails to create that file (or, once it is gone again, finds the content changed) and
 * re-evaluates: the new owner is alive, so it refuses. A taker killed between its claim and its
 * rename leaves a claim of a dead process, which the next start clears before retrying; only two
 * starts clearing that same dead claim within microseconds of each other could both take over.
 */
export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, startedAt: processStartTime(process.pid) };
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  for (;;) {
    if (createExclusively(path, me)) return new DataDirLock(path, me);
    const text = readText(path);
    if (text === undefined) continue; // released between our attempt and the read
    const owner = parseOwner(text);
    if (owner !== undefined && isOwnerAlive(owner)) throw alreadyRunning(dataDir, owner);
    if (takeOver(path, text, me)) return new DataDirLock(path, me);
    if (Date.now() > deadline) {
      throw new Error(`could not take over the stale lock ${path} within ${TAKEOVER_WAIT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The owner recorded in `dataDir`'s lock, when one is recorded and alive. */
export function liveOwner(dataDir: string): LockOwner | undefined {
  const owner = readOwner(join(dataDir, LOCK_FILE));
  return typeof owner === 'object' && isOwnerAlive(owner) ? owner : undefined;
}

export function alreadyRunning(dataDir: string, owner: LockOwner): TallyError {
  const port = owner.pgPort === undefined ? 'starting' : `port ${owner.pgPort}`;
  return new TallyError(
    'TALLY_ALREADY_RUNNING',
    `Tally is already running on ${dataDir} (pid ${owner.pid}, ${port})`,
  );
}

function createExclusively(path: string, owner: LockOwner): boolean {
  const tmp = writeTemp(path, owner);
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

function takeOver(path: string, staleText: string, me: LockOwner): boolean {
  const claim = `${path}.takeover-${createHash('sha256').update(staleText).digest('hex').slice(0, 16)}`;
  // Linked into place whole (never seen empty), so a concurrent start cannot mistake a claim
  // being written for a dead one and clear it.
  if (!createExclusively(claim, me)) {
    // Another start is taking it over. If that one died half-way, clear its claim and retry.
    const taker = readOwner(claim);
    if (typeof taker !== 'object' || !isOwnerAlive(taker)) rmQuietly(claim);
    return false;
  }
  try {
    if (readText(path) !== staleText) return false;
    replaceAtomically(path, me);
    return true;
  } finally {
    const holder = readOwner(claim);
    if (typeof holder === 'object' && sameProcess(holder, me)) rmQuietly(claim);
  }
}

function replaceAtomically(path: string, owner: LockOwner): void {
  renameSync(writeTemp(path, owner), path);
}

function writeTemp(path: string, owner: LockOwner): string {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(owner)}\n`, { flag: 'wx' });
  return tmp;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The owner in the file; 'unreadable' for content that is not a lock (treated as stale). */
function readOwner(path: string): LockOwner | 'unreadable' | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  return parseOwner(text) ?? 'unreadable';
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (!Number.isInteger(value.pid) || (value.pid ?? 0) <= 0) return undefined;
    return {
      pid: value.pid!,
      startedAt: typeof value.startedAt === 'string' ? value.startedAt : null,
      pgPort: Number.isInteger(value.pgPort) ? value.pgPort : undefined,
    };
  } catch {
    return undefined;
  }
}

function sameProcess(a: LockOwner, b: LockOwner): boolean {
  return a.pid === b.pid && a.startedAt === b.startedAt;
}

function rmQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
