import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createApiKey } from '../../src/auth/api-keys.ts';
import { ApiKeyStore } from '../../src/store/api-keys-store.ts';
import { startTestTally, type TestTally } from '../helpers/embedded-tally.ts';
import { pool as runPool } from '../helpers/oracle.ts';
import { waitFor } from '../helpers/poll.ts';

// A browser's: the fetch default (`node`) is a bot's, left out of every number.
const BROWSER_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

interface Keys {
  write: string;
  read: string;
  admin: string;
  adminId: number;
  otherAdmin: string;
}

/** Keys of project `shop` (and an admin key of `blog`), created through the store as `tally keys create` does. */
async function createKeys(tally: TestTally): Promise<Keys> {
  const store = new ApiKeyStore(tally.database.pool);
  const admin = await createApiKey(store, 'shop', 'admin');
  const keys = {
    write: (await createApiKey(store, 'shop', 'write')).key,
    read: (await createApiKey(store, 'shop', 'read')).key,
    admin: admin.key,
    adminId: admin.record.id,
    otherAdmin: (await createApiKey(store, 'blog', 'admin')).key,
  };
  await tally.keys.refresh();
  return keys;
}

function call(tally: TestTally, method: string, path: string, key?: string) {
  return fetch(`${tally.url}${path}`, { method, headers: key === undefined ? {} : { 'x-api-key': key } });
}

async function sendEvents(tally: TestTally, key: string, events: readonly Record<string, unknown>[]) {
  const res = await fetch(`${tally.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
    body: events.map((e) => JSON.stringify(e)).join('\n'),
  });
  const body = (await res.json()) as { accepted: number; rejected?: unknown };
  assert.equal(res.status, 202, JSON.stringify(body).slice(0, 300));
  assert.equal(body.accepted, events.length);
}

async function summaryEvents(tally: TestTally, readKey: string): Promise<number> {
  const res = await call(tally, 'GET', '/v1/stats/summary', readKey);
  assert.equal(res.status, 200);
  return ((await res.json()) as { events: number }).events;
}

interface ErrorBody {
  code: string;
  message: string;
  errors?: { field: string }[];
}

async function expectError(res: Response, status: number, code: string, field?: string): Promise<ErrorBody> {
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.code, code);
  if (field !== undefined)
    assert.deepEqual(
      body.errors?.map((e) => e.field),
      [field],
    );
  return body;
}

const ADMIN_PATHS = [
  ['DELETE', '/v1/users/u-1?project=shop'],
  ['GET', '/v1/users/u-1/export?project=shop'],
  ['GET', '/v1/admin/audit?project=shop'],
] as const;

interface AuditRecord {
  action: string;
  actor: string;
  outcome: string;
  events: number;
  user_hash: string;
}

test(
  'admin routes on a real Tally: 403 in open mode and for read or write keys; an admin key deletes (unknown user: zeros), and coded 400s name the bad field',
  { timeout: 120_000 },
  async (t) => {
    const tally = await startTestTally(t);
    // Open mode: everything else answers without a key, the admin routes never do.
    for (const [method, path] of ADMIN_PATHS) {
      const body = await expectError(
        await call(tally, method, path.replace('shop', 'default')),
        403,
        'TALLY_FORBIDDEN',
      );
      assert.match(body.message, /no API key exists/);
    }

    const keys = await createKeys(tally);
    const now = Date.now();
    const events = ['u-1', 'u-1', 'u-1', 'u-2'].map((user_id, i) => ({
      event_id: `e-${i}`,
      type: 'page_view',
      user_id,
      page_url: `https://shop.example/p${i}`,
      timestamp: new Date(now - 60_000 * (i + 1)).toISOString(),
      user_agent: BROWSER_UA,
    }));
    await sendEvents(tally, keys.write, events);
    assert.equal(await summaryEvents(tally, keys.read), 4);

    for (const [method, path] of ADMIN_PATHS) {
      for (const key of [keys.read, keys.write]) {
        const body = await expectError(await call(tally, method, path, key), 403, 'TALLY_FORBIDDEN');
        assert.match(body.message, /an admin key is needed/);
      }
      await expectError(await call(tally, method, path), 401, 'TALLY_UNAUTHORIZED');
      const other = await expectError(
        await call(tally, method, path, keys.otherAdmin),
        403,
        'TALLY_FORBIDDEN',
      );
      assert.match(other.message, /this admin key is for project blog, not shop/);
    }
    assert.equal(await summaryEvents(tally, keys.read), 4, 'nothing was deleted by the refused calls');

    // An unknown user: 200 with zeros, and again (idempotent).
    for (let i = 0; i < 2; i++) {
      const res = await call(tally, 'DELETE', '/v1/users/nobody?project=shop', keys.admin);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        project: 'shop',
        user_id: 'nobody',
        events: 0,
        visits: 0,
        dead_letters: 0,
        version: null,
        inexact_days: [],
      });
    }
    // Any user id events can carry reaches the route (Fastify's own limit is 100 characters).
    const longId = 'x'.repeat(256);
    const long = await call(tally, 'DELETE', `/v1/users/${longId}?project=shop`, keys.admin);
    assert.equal(long.status, 200, await long.clone().text());
    assert.equal(((await long.json()) as { user_id: string }).user_id, longId);

    // Bad input: coded 400s naming the field.
    const admin = (method: string, path: string) => call(tally, method, path, keys.admin);
    await expectError(await admin('DELETE', '/v1/users/u-1'), 400, 'TALLY_INVALID_QUERY', 'project');
    await expectError(
      await admin('DELETE', '/v1/users/u-1?project=no%20spaces'),
      400,
      'TALLY_INVALID_QUERY',
      'project',
    );
    await expectError(
      await admin('GET', '/v1/users/u-1/export?project=-x'),
      400,
      'TALLY_INVALID_QUERY',
      'project',
    );
    await expectError(await admin('GET', '/v1/admin/audit'), 400, 'TALLY_INVALID_QUERY', 'project');
    await expectError(
      await admin('DELETE', `/v1/users/${'x'.repeat(257)}?project=shop`),
      400,
      'TALLY_INVALID_QUERY',
      'url',
    );
    await expectError(
      await admin('GET', '/v1/admin/audit?project=shop&since=yesterday'),
      400,
      'TALLY_INVALID_QUERY',
      'since',
    );
    await expectError(
      await admin('GET', '/v1/admin/audit?project=shop&limit=0'),
      400,
      'TALLY_INVALID_QUERY',
      'limit',
    );
    await expectError(
      await admin('GET', '/v1/admin/audit?project=shop&user='),
      400,
      'TALLY_INVALID_QUERY',
      'user',
    );
    await expectError(
      await admin('DELETE', '/v1/users/u-1?project=shop&force=1'),
      400,
      'TALLY_INVALID_QUERY',
      'force',
    );
    assert.equal(await summaryEvents(tally, keys.read), 4, 'nothing was deleted by the refused calls');

    // A known user: its events go, the other user's stay; this process answers at once. Its dead
    // letter (a payload that failed validation, naming it) goes too; u-2's stays.
    await tally.database.pool.query(
      `INSERT INTO tally.dead_letters (project, reason, payload, source)
       VALUES ('shop', 'invalid', convert_to('{"user_id":"u-1","type":""}', 'UTF8'), 'kafka'),
              ('shop', 'invalid', convert_to('{"user_id":"u-2","type":""}', 'UTF8'), 'kafka')`,
    );
    const deleted = await admin('DELETE', '/v1/users/u-1?project=shop');
    assert.equal(deleted.status, 200);
    const deletion = (await deleted.json()) as {
      events: number;
      visits: number;
      dead_letters: number;
      version: number | null;
    };
    assert.equal(deletion.events, 3);
    assert.equal(deletion.visits, 1);
    assert.equal(deletion.dead_letters, 1);
    const letters = await tally.database.pool.query<{ payload: string }>(
      "SELECT convert_from(payload, 'UTF8') AS payload FROM tally.dead_letters",
    );
    assert.deepEqual(
      letters.rows.map((r) => r.payload),
      ['{"user_id":"u-2","type":""}'],
    );
    assert.equal(typeof deletion.version, 'number');
    assert.equal(await summaryEvents(tally, keys.read), 1);

    const audit = await admin('GET', '/v1/admin/audit?project=shop');
    assert.equal(audit.status, 200);
    const { records } = (await audit.json()) as { records: AuditRecord[] };
    assert.deepEqual(
      records.map((r) => [r.action, r.outcome, r.events, r.actor]),
      [
        ['delete', 'ok', 3, `key:${keys.adminId}`],
        ['delete', 'ok', 0, `key:${keys.adminId}`],
        ['delete', 'ok', 0, `key:${keys.adminId}`],
        ['delete', 'ok', 0, `key:${keys.adminId}`],
      ],
      'newest first',
    );
    assert.ok(
      records.every((r) => /^[0-9a-f]{64}$/.test(r.user_hash)),
      'users appear as hashes only',
    );
    const ofUser = (await (await admin('GET', '/v1/admin/audit?project=shop&user_id=nobody')).json()) as {
      records: AuditRecord[];
    };
    assert.equal(ofUser.records.length, 2);
    const limited = (await (await admin('GET', '/v1/admin/audit?project=shop&limit=1')).json()) as {
      records: AuditRecord[];
    };
    assert.deepEqual(limited.records, records.slice(0, 1));
    const future = (await (await admin('GET', '/v1/admin/audit?project=shop&since=2999-01-01')).json()) as {
      records: AuditRecord[];
    };
    assert.deepEqual(future.records, []);
    const blog = await call(tally, 'GET', '/v1/admin/audit?project=blog', keys.otherAdmin);
    assert.deepEqual(
      ((await blog.json()) as { records: unknown[] }).records,
      [],
      "another project's audit is its own",
    );

    // Read-your-writes, again and again: each answer right after a 200 is at the deletion's
    // version, never the one cached before it (which a NOTIFY a moment later would also fix).
    const more = Array.from({ length: 8 }, (_, i) => ({
      event_id: `r-${i}`,
      type: 'page_view',
      user_id: `r-${i}`,
      timestamp: new Date(now - 30_000).toISOString(),
      user_agent: BROWSER_UA,
    }));
    await sendEvents(tally, keys.write, more);
    for (let i = 0; i < more.length; i++) {
      assert.equal(await summaryEvents(tally, keys.read), 1 + more.length - i, 'cached before the deletion');
      assert.equal((await admin('DELETE', `/v1/users/r-${i}?project=shop`)).status, 200);
      assert.equal(await summaryEvents(tally, keys.read), more.length - i, `at once after deleting r-${i}`);
    }
  },
);

const HEAVY_EVENTS = 20_000;
/** About 1 KB per event: the export (~30 MB) is far more than the sockets between client and server buffer. */
const PAD = 'p'.repeat(1000);

/** Sessions of Tally's pool inside an export's snapshot (its cursor is named user_export). */
async function exportSessions(tally: TestTally): Promise<{ state: string; state_change: Date }[]> {
  const { rows } = await tally.database.pool.query<{ state: string; state_change: Date }>(
    `SELECT state, state_change FROM pg_stat_activity
      WHERE query LIKE '%user_export%' AND state LIKE '%in transaction%' AND pid <> pg_backend_pid()`,
  );
  return rows;
}

/** Reads a body chunk by chunk into lines. */
function lineReader(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    /** The next whole lines (at least one), or undefined at the end. */
    async next(): Promise<string[] | undefined> {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return buffered === '' ? undefined : [buffered];
        buffered += decoder.decode(value, { stream: true });
        const cut = buffered.lastIndexOf('\n');
        if (cut >= 0) {
          const lines = buffered.slice(0, cut).split('\n');
          buffered = buffered.slice(cut + 1);
          return lines;
        }
      }
    },
    cancel: () => reader.cancel(),
  };
}

test(
  'export streams a user with 20,000 events on one snapshot, one NDJSON line each, paced by the client; audit lists exports and the deletion',
  { timeout: 300_000 },
  async (t) => {
    const tally = await startTestTally(t);
    const keys = await createKeys(tally);
    const now = Date.now();
    const sent = new Set<string>();
    const batches: Record<string, unknown>[][] = [];
    for (let b = 0; b < HEAVY_EVENTS / 500; b++) {
      batches.push(
        Array.from({ length: 500 }, (_, i) => {
          const n = b * 500 + i;
          sent.add(`h-${n}`);
          return {
            event_id: `h-${n}`,
            type: n % 3 === 0 ? 'click' : 'page_view',
            user_id: 'heavy',
            page_url: `https://shop.example/p${n % 50}`,
            // 3 s apart over the last ~17 hours: one visit, inside the summary's default 24 h.
            timestamp: new Date(now - 3000 * (n + 1)).toISOString(),
            user_agent: BROWSER_UA,
            properties: { n, pad: PAD },
          };
        }),
      );
    }
    batches.push(
      Array.from({ length: 50 }, (_, i) => ({
        event_id: `l-${i}`,
        type: 'page_view',
        user_id: 'light',
        timestamp: new Date(now - 60_000 * (i + 1)).toISOString(),
        user_agent: BROWSER_UA,
      })),
    );
    await runPool(
      batches.map((batch) => () => sendEvents(tally, keys.write, batch)),
      4,
    );
    assert.equal(await summaryEvents(tally, keys.read), HEAVY_EVENTS + 50);

    // The first line arrives while the snapshot is still open, and the server stops reading
    // when the client stops: it is streamed at the client's pace, not built in memory first.
    const res = await call(tally, 'GET', '/v1/users/heavy/export?project=shop', keys.admin);
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^application\/x-ndjson/);
    const lines = lineReader(res);
    const firstLines = (await lines.next())!;
    const header = JSON.parse(firstLines[0]) as Record<string, unknown>;
    assert.deepEqual(
      { ...header, version: undefined },
      {
        kind: 'export',
        project: 'shop',
        user_id: 'heavy',
        version: undefined,
        events: HEAVY_EVENTS,
        visits: 1,
        dead_letters: 0,
        deleted: false,
      },
    );
    // Blocked, not merely between two fetches: idle in its transaction, and still so a second
    // later with no statement in between. A body built before sending never gets here: by its
    // first line the snapshot has ended.
    await waitFor('the export to stop reading while the client does, inside its snapshot', async () => {
      const before = await exportSessions(tally);
      if (before.length !== 1 || before[0].state !== 'idle in transaction') return false;
      await new Promise((r) => setTimeout(r, 1000));
      const after = await exportSessions(tally);
      return after.length === 1 && after[0].state_change.getTime() === before[0].state_change.getTime();
    });

    const kinds = new Map<string, number>();
    const exported = new Set<string>();
    let last: Record<string, unknown> | undefined;
    const take = (batch: string[]) => {
      for (const text of batch) {
        const line = JSON.parse(text) as {
          kind: string;
          data?: { event_id?: string; user_id?: string; properties?: { pad?: string } };
        };
        kinds.set(line.kind, (kinds.get(line.kind) ?? 0) + 1);
        if (line.kind === 'event') {
          assert.equal(line.data?.user_id, 'heavy');
          assert.equal(line.data?.properties?.pad, PAD);
          assert.ok(!exported.has(line.data.event_id!), `${line.data.event_id} exported twice`);
          exported.add(line.data.event_id!);
        }
        last = line;
      }
    };
    take(firstLines);
    for (let batch = await lines.next(); batch !== undefined; batch = await lines.next()) take(batch);
    assert.deepEqual(last, { kind: 'end' });
    assert.deepEqual(Object.fromEntries(kinds), {
      export: 1,
      event: HEAVY_EVENTS,
      visit: 1,
      user_number: 1,
      end: 1,
    });
    assert.deepEqual(exported, sent, 'every event of the user, once');
    await waitFor('the export to end its snapshot', async () => (await exportSessions(tally)).length === 0);

    // Two exports at a time: a third waits its turn (503). Clients that go away mid-export: the
    // snapshots end, the connections return, and the turn is free again.
    const controller = new AbortController();
    const open = async () => {
      const res = await fetch(`${tally.url}/v1/users/heavy/export?project=shop`, {
        headers: { 'x-api-key': keys.admin },
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      await (res.body as ReadableStream<Uint8Array>).getReader().read();
    };
    await Promise.all([open(), open()]);
    const busy = await expectError(
      await call(tally, 'GET', '/v1/users/heavy/export?project=shop', keys.admin),
      503,
      'TALLY_UNAVAILABLE',
    );
    assert.match(busy.message, /2 exports are running/);
    controller.abort();
    await waitFor(
      'the abandoned exports to end their snapshots',
      async () => (await exportSessions(tally)).length === 0,
    );

    const deleted = await call(tally, 'DELETE', '/v1/users/heavy?project=shop', keys.admin);
    assert.equal(deleted.status, 200);
    assert.deepEqual(
      { ...((await deleted.json()) as Record<string, unknown>), version: undefined },
      {
        project: 'shop',
        user_id: 'heavy',
        events: HEAVY_EVENTS,
        visits: 1,
        dead_letters: 0,
        version: undefined,
        inexact_days: [],
      },
    );
    assert.equal(await summaryEvents(tally, keys.read), 50);

    // What is left of a deleted user: its tombstone and its audit, by hash.
    const after = await call(tally, 'GET', '/v1/users/heavy/export?project=shop', keys.admin);
    const rest = (await after.text())
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; data?: { action?: string } });
    assert.deepEqual(
      { ...rest[0], version: undefined },
      {
        kind: 'export',
        project: 'shop',
        user_id: 'heavy',
        version: undefined,
        events: 0,
        visits: 0,
        dead_letters: 0,
        deleted: true,
      },
    );
    assert.deepEqual(
      rest.slice(1).map((l) => (l.kind === 'audit' ? `audit ${l.data?.action}` : l.kind)),
      ['tombstone', 'audit export', 'audit export', 'audit export', 'audit delete', 'end'],
    );

    const audit = await call(tally, 'GET', '/v1/admin/audit?project=shop&user_id=heavy', keys.admin);
    const { records } = (await audit.json()) as { records: AuditRecord[] };
    assert.deepEqual(
      records.map((r) => [r.action, r.outcome, r.events, r.actor]),
      [
        ['export', 'ok', 0, `key:${keys.adminId}`],
        ['delete', 'ok', HEAVY_EVENTS, `key:${keys.adminId}`],
        ['export', 'ok', HEAVY_EVENTS, `key:${keys.adminId}`],
        ['export', 'ok', HEAVY_EVENTS, `key:${keys.adminId}`],
        ['export', 'ok', HEAVY_EVENTS, `key:${keys.adminId}`],
      ],
    );
  },
);

test(
  'a deletion that cannot be exact (no raw rows kept) is a 409 naming the days, nothing changed; allow_inexact=true deletes the rest',
  { timeout: 120_000 },
  async (t) => {
    const tally = await startTestTally(t, { TALLY_STORE_RAW: 'false' });
    const keys = await createKeys(tally);
    const at = new Date(Date.now() - 60_000);
    const day = at.toISOString().slice(0, 10);
    await sendEvents(
      tally,
      keys.write,
      ['e-1', 'e-2'].map((event_id) => ({
        event_id,
        type: 'page_view',
        user_id: 'u-1',
        timestamp: at.toISOString(),
        user_agent: BROWSER_UA,
      })),
    );
    const summary = async () => {
      const res = await call(tally, 'GET', '/v1/stats/summary', keys.read);
      const body = (await res.json()) as { events: number; unique_users: number };
      return { events: body.events, unique_users: body.unique_users };
    };
    assert.deepEqual(await summary(), { events: 2, unique_users: 1 });

    const refused = await expectError(
      await call(tally, 'DELETE', '/v1/users/u-1?project=shop', keys.admin),
      409,
      'TALLY_DELETE_INEXACT',
    );
    assert.ok(refused.message.includes(day), refused.message);
    assert.deepEqual(await summary(), { events: 2, unique_users: 1 }, 'nothing changed');

    const res = await call(tally, 'DELETE', '/v1/users/u-1?project=shop&allow_inexact=true', keys.admin);
    assert.equal(res.status, 200);
    const deletion = (await res.json()) as { events: number; inexact_days: string[] };
    assert.deepEqual(deletion.inexact_days, [day]);
    assert.deepEqual(
      await summary(),
      { events: 2, unique_users: 0 },
      'the day stays over-counted, the user gone',
    );

    const audit = await call(tally, 'GET', '/v1/admin/audit?project=shop', keys.admin);
    const { records } = (await audit.json()) as {
      records: (AuditRecord & { detail: { inexact_days?: string[] } })[];
    };
    assert.deepEqual(
      records.map((r) => [r.action, r.outcome]),
      [
        ['delete', 'ok'],
        ['delete', 'failed'],
      ],
    );
    assert.deepEqual(records[0].detail.inexact_days, [day]);
  },
);
