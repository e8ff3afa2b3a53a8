import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findRunningEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { findFreePort } from '../../src/util/free-port.ts';
import { runTally as tally, spawnTally } from '../helpers/child-tally.ts';

async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test(
  'tally keys create|list|revoke and tally migrate work next to a running tally start',
  { timeout: 240_000 },
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-keys-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const env = { TALLY_DATA_DIR: dataDir };
    const server = await spawnTally(['start'], env, await findFreePort());
    t.after(() => server.child.kill('SIGKILL'));
    // Keyless events land in the open `default` project.
    for (const id of ['d1', 'd2', 'd3']) {
      const res = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event_id: id, type: 'click', user_id: 'u-d' }),
      });
      assert.equal(res.status, 202);
    }

    const created = await tally(['keys', 'create', '--project', 'shop', '--scope', 'write'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /first API key: from now on every request needs a key/);
    assert.match(
      created.stderr,
      /the 3 events of the keyless project "default" are no longer served without a key/,
    );
    assert.match(created.stderr, /tally keys create --project default --scope read/);
    assert.match(created.stderr, /tally projects move default <project>/);
    const lines = created.stdout.trimEnd().split('\n');
    const key = lines.at(-1)!;
    assert.match(key, /^tally_[A-Za-z0-9_-]{43}$/, 'the key is the last line');
    const second = await tally(['keys', 'create', '--project', 'shop', '--scope', 'read'], env);
    assert.doesNotMatch(second.stderr, /first API key/, 'only the first key announces the switch');
    const readKey = second.stdout.trimEnd().split('\n').at(-1)!;

    // The running server picks the new key up by itself within seconds.
    const send = () =>
      fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ type: 'page_view', user_id: 'u-1', page_url: '/x' }),
      });
    await until('the API to close once a key exists', async () =>
      (await fetch(`${server.url}/v1/stats/summary`)).status === 401 ? true : undefined,
    );
    assert.equal((await send()).status, 202);
    // The read key was created a moment after the write key: wait until the server has it too.
    const summary = await until('the read key to be accepted', async () => {
      const res = await fetch(`${server.url}/v1/stats/summary`, { headers: { 'x-api-key': readKey } });
      return res.status === 200 ? ((await res.json()) as { events: number }) : undefined;
    });
    assert.equal(summary.events, 1);

    const listed = await tally(['keys', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    const prefix = key.slice(0, 14);
    assert.match(listed.stdout, new RegExp(`${prefix}\\s+write\\s+shop\\s+active`));
    assert.ok(!listed.stdout.includes(key), 'list never shows a key');

    const revoked = await tally(['keys', 'revoke', prefix], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /revoked/);
    await until('the revoked key to be refused', async () =>
      (await send()).status === 401 ? true : undefined,
    );
    assert.equal((await tally(['keys', 'revoke', 'tally_nothing'], env)).code, 1);

    // Columns line up whatever the widths: ids up to 10, a long project name, a revoked state.
    for (let i = 0; i < 8; i++) {
      assert.equal(
        (await tally(['keys', 'create', '--project', 'a-longer-project-name', '--scope', 'read'], env)).code,
        0,
      );
    }
    const table = (await tally(['keys', 'list'], env)).stdout.trimEnd().split('\n');
    assert.equal(table.length, 11, 'a header and ten keys');
    assert.match(table[0], /^\s*id {2}prefix\s+scope {2}project\s+state$/);
    const starts = ['prefix', 'scope', 'project', 'state'].map((column) => table[0].indexOf(column));
    for (const row of table) {
      assert.equal(row.length >= starts[3], true, row);
      for (const s of starts)
        assert.match(row.slice(s - 2, s + 1), /^ {2}\S$/, `column at ${s} in ${JSON.stringify(row)}`);
      assert.match(row.slice(0, starts[0] - 2), /^\s*(id|\d+)$/, 'ids right-aligned');
    }

    // Keep the keyless data: move `default` into a named project, served with that project's key.
    const moved = await tally(['projects', 'move', 'default', 'archive'], env);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /^moved project default into archive: 3 events/);
    const archiveKey = (
      await tally(['keys', 'create', '--project', 'archive', '--scope', 'read'], env)
    ).stdout
      .trimEnd()
      .split('\n')
      .at(-1)!;
    const archived = await until('the archive key to be accepted', async () => {
      const res = await fetch(`${server.url}/v1/stats/summary`, { headers: { 'x-api-key': archiveKey } });
      return res.status === 200 ? ((await res.json()) as { events: number }) : undefined;
    });
    assert.equal(archived.events, 3);
    const empty = await tally(['projects', 'move', 'default', 'archive2'], env);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^tally: project default holds no data to move \(TALLY_PROJECT_EMPTY\)$/m);
    const taken = await tally(['projects', 'move', 'shop', 'archive'], env);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /project archive already holds data .*\(TALLY_PROJECT_HAS_DATA\)/);
    assert.notEqual((await tally(['projects', 'move', 'default', 'no spaces'], env)).code, 0);
    const badScope = await tally(['keys', 'create', '--project', 'shop', '--scope', 'owner'], env);
    assert.notEqual(badScope.code, 0);
    assert.match(badScope.stderr, /Allowed choices are read, write, admin/);
    const adminKey = await tally(['keys', 'create', '--project', 'shop', '--scope', 'admin'], env);
    assert.equal(adminKey.code, 0, adminKey.stderr);
    assert.match(adminKey.stdout, /^created admin key \d+ /);

    // `tally migrate` against DATABASE_URL (here: the running server's PostgreSQL).
    const running = findRunningEmbeddedPostgres(dataDir);
    assert.ok(running, 'the running embedded PostgreSQL is found through postmaster.pid');
    const migrated = await tally(['migrate'], { DATABASE_URL: running.connectionString });
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /003_api_keys\.sql/);

    server.child.kill('SIGTERM');
    assert.deepEqual(await server.exited, { code: 0, signal: null });
    assert.equal(findRunningEmbeddedPostgres(dataDir), undefined, 'stopped with tally start');
  },
);

test(
  'tally migrate on a fresh data dir; no keys + a non-loopback TALLY_HOST refuses to start',
  { timeout: 240_000 },
  async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'tally-migrate-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const env = { TALLY_DATA_DIR: dataDir };
    const migrated = await tally(['migrate'], env);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /001_core\.sql, 002_seed_compat_views\.sql, 003_api_keys\.sql/);
    assert.equal(findRunningEmbeddedPostgres(dataDir), undefined, 'the server it started is stopped again');

    const refused = await tally(['start'], { ...env, TALLY_HOST: '0.0.0.0', SERVER_PORT: '0' });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /refusing to listen on 0\.0\.0\.0 without API keys/);
    assert.match(refused.stderr, /TALLY_ALLOW_UNAUTHENTICATED/);
  },
);
