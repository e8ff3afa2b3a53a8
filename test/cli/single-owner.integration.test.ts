import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findRunningEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { LOCK_FILE } from '../../src/store/data-dir-lock.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { runTally as tally, spawnTally, type ChildTally } from '../helpers/child-tally.ts';

async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

async function ingest(server: ChildTally, eventId: string): Promise<void> {
  const res = await fetch(`${server.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ event_id: eventId, type: 'click', user_id: 'u-1' }),
  });
  assert.equal(res.status, 202, await res.text());
}

async function events(server: ChildTally): Promise<number> {
  const res = await fetch(`${server.url}/v1/stats/summary`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { events: number }).events;
}

async function killed(server: ChildTally): Promise<void> {
  server.child.kill('SIGKILL');
  await server.exited;
}

test(
  'a second tally start on the same data dir refuses in one line and leaves the first untouched; a killed owner is taken over',
  { timeout: 300_000 },
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-owner-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const env = { TALLY_DATA_DIR: dataDir };
    const first = await spawnTally(['start'], env, await findFreePort());
    t.after(() => first.child.kill('SIGKILL'));
    const pg = findRunningEmbeddedPostgres(dataDir);
    assert.ok(pg, 'the first start runs PostgreSQL');

    const second = await tally(['start'], { ...env, SERVER_PORT: String(await findFreePort()) });
    assert.notEqual(second.code, 0, second.stderr);
    assert.ok(
      second.stderr.includes(
        `Tally is already running on ${dataDir} (pid ${first.child.pid}, port ${pg.port})`,
      ),
      second.stderr,
    );

    // The first one is still whole: healthy, ingesting, on the same PostgreSQL.
    assert.equal((await fetch(`${first.url}/health`)).status, 200);
    await ingest(first, 'e1');
    assert.equal(
      await until('the event to be counted', async () => ((await events(first)) === 1 ? 1 : undefined)),
      1,
    );
    assert.equal(findRunningEmbeddedPostgres(dataDir)?.port, pg.port);
    assert.equal(first.child.exitCode, null);

    // Killed: its PostgreSQL keeps running as an orphan, and the next start takes over.
    await killed(first);
    assert.ok(findRunningEmbeddedPostgres(dataDir), 'the orphaned PostgreSQL still runs');
    const third = await spawnTally(['start'], env, await findFreePort());
    t.after(() => third.child.kill('SIGKILL'));
    assert.equal(await events(third), 1, 'the data survived the takeover');
    await ingest(third, 'e2');

    // Killed with its PostgreSQL: a stale lock and a stale postmaster.pid.
    const postmaster = findRunningEmbeddedPostgres(dataDir);
    assert.ok(postmaster);
    const postmasterPid = Number(readFileSync(join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    await killed(third);
    process.kill(postmasterPid, 'SIGKILL');
    await until('PostgreSQL to die', () => (alive(postmasterPid) ? undefined : true));
    assert.ok(existsSync(join(dataDir, 'pg', 'postmaster.pid')), 'a stale postmaster.pid is left');
    assert.ok(existsSync(join(dataDir, LOCK_FILE)), 'a stale lock is left');

    const fourth = await spawnTally(['start'], env, await findFreePort());
    t.after(() => fourth.child.kill('SIGKILL'));
    assert.equal(await events(fourth), 2);
    fourth.child.kill('SIGTERM');
    assert.deepEqual(await fourth.exited, { code: 0, signal: null });
    assert.equal(existsSync(join(dataDir, LOCK_FILE)), false, 'a clean stop releases the lock');
  },
);
