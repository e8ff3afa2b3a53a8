import assert from 'node:assert/strict';
import { userInfo } from 'node:os';
import { test } from 'node:test';
import { runTally as tally } from '../helpers/child-tally.ts';
import { getJson, postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { waitFor } from '../helpers/poll.ts';

const BROWSER_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

test(
  'tally users export|delete|audit next to a running tally start, without any API key',
  { timeout: 240_000 },
  async (t) => {
    const server = await startTestTally(t);
    const env = { TALLY_DATA_DIR: server.dataDir };
    const now = Date.now();
    const events = [
      ...['a-1', 'a-2', 'a-3'].map((id, i) => ({
        event_id: id,
        user_id: 'ana@example.org',
        page_url: `https://x.example/${i}`,
      })),
      { event_id: 'b-1', user_id: 'ben', page_url: 'https://x.example/b' },
    ].map((e, i) => ({
      ...e,
      type: 'page_view',
      timestamp: new Date(now - 60_000 * (i + 1)).toISOString(),
      user_agent: BROWSER_UA,
    }));
    assert.equal((await postJson(`${server.url}/v1/events`, events)).status, 202);
    const summary = async () =>
      (await getJson<{ events: number }>(`${server.url}/v1/stats/summary`)).body.events;
    assert.equal(await summary(), 4);

    const exported = await tally(['users', 'export', 'ana@example.org', '--project', 'default'], env);
    assert.equal(exported.code, 0, exported.stderr);
    const lines = exported.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; events?: number; data?: { event_id?: string } });
    assert.deepEqual(
      { ...lines[0], version: undefined },
      {
        kind: 'export',
        project: 'default',
        user_id: 'ana@example.org',
        version: undefined,
        events: 3,
        visits: 1,
        dead_letters: 0,
        deleted: false,
      },
    );
    assert.deepEqual(
      lines.filter((l) => l.kind === 'event').map((l) => l.data?.event_id),
      ['a-3', 'a-2', 'a-1'],
      'oldest first',
    );
    assert.deepEqual(
      lines.map((l) => l.kind),
      ['export', 'event', 'event', 'event', 'visit', 'user_number', 'end'],
    );

    const deleted = await tally(['users', 'delete', 'ana@example.org', '--project', 'default'], env);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(
      deleted.stdout,
      /^deleted user "ana@example\.org" of project default: 3 events and 1 visit removed, every rollup corrected \(data version \d+\); its later events are dropped\n$/,
    );
    // The running server learns of it through the version's NOTIFY.
    await waitFor('the server to answer without ana', async () => (await summary()) === 1);
    const again = await tally(['users', 'delete', 'ana@example.org', '--project', 'default'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stdout,
      /^deleted user "ana@example\.org" of project default: nothing was stored about it;/,
    );

    const audit = await tally(['users', 'audit', '--project', 'default'], env);
    assert.equal(audit.code, 0, audit.stderr);
    const table = audit.stdout.trimEnd().split('\n');
    assert.match(table[0], /^id\s+at\s+action\s+outcome\s+events\s+actor\s+user_hash$/);
    const actor = `cli:${userInfo().username}`;
    assert.deepEqual(
      table.slice(1).map((row) => row.split(/\s+/).slice(2, 6)),
      [
        ['delete', 'ok', '0', actor],
        ['delete', 'ok', '3', actor],
        ['export', 'ok', '3', actor],
      ],
      'newest first',
    );
    const hashes = new Set(table.slice(1).map((row) => row.split(/\s+/)[6]));
    assert.equal(hashes.size, 1);
    assert.match([...hashes][0], /^[0-9a-f]{64}$/);
    assert.ok(!audit.stdout.includes('ana@'), 'the audit shows no user id');

    const ofBen = await tally(['users', 'audit', '--project', 'default', '--user', 'ben'], env);
    assert.equal(ofBen.stdout, 'no deletions or exports recorded for project default\n');
    const ofAna = await tally(
      ['users', 'audit', '--project', 'default', '--user', 'ana@example.org', '--limit', '1'],
      env,
    );
    assert.equal(ofAna.stdout.trimEnd().split('\n').length, 2, 'a header and one record');
    const future = await tally(['users', 'audit', '--project', 'default', '--since', '2999-01-01'], env);
    assert.equal(future.code, 0, future.stderr);
    assert.match(future.stdout, /^no deletions or exports recorded/);
    const badSince = await tally(['users', 'audit', '--project', 'default', '--since', 'yesterday'], env);
    assert.equal(badSince.code, 1);
    assert.match(badSince.stderr, /^tally: since must be a date .*\(TALLY_INVALID_QUERY\)$/m);
    const badProject = await tally(['users', 'delete', 'ben', '--project', 'no spaces'], env);
    assert.notEqual(badProject.code, 0);
    assert.match(badProject.stderr, /--project/);
    const noProject = await tally(['users', 'delete', 'ben'], env);
    assert.notEqual(noProject.code, 0);
    assert.match(noProject.stderr, /required option '--project <name>'/);
    assert.equal(await summary(), 1, 'ben is untouched');

    // Meanwhile the HTTP admin routes stay closed: no API key exists.
    const res = await fetch(`${server.url}/v1/users/ben?project=default`, { method: 'DELETE' });
    assert.equal(res.status, 403);
  },
);
