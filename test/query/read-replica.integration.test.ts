import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { startQueryRole, type QueryRole } from '../../src/cli/query-role.ts';
import { loadConfig } from '../../src/config/load.ts';
import { postJson, startTestTally } from '../helpers/embedded-tally.ts';
import { analyticsClient } from '../helpers/grpc-client.ts';
import { startTestReplica } from '../helpers/pg-replica.ts';
import { waitFor } from '../helpers/poll.ts';

const FROM = '2025-03-01T00:00:00Z';

let nextId = 0;
function event(user: string) {
  const ts = Date.parse('2025-03-01T10:00:00Z') + nextId * 61_000;
  return {
    event_id: `r-${nextId++}`,
    type: 'page_view',
    user_id: user,
    page_url: 'https://a.test/',
    timestamp: ts,
  };
}

interface Answer {
  status: number;
  events: number;
  source: string | null;
  lagMs: number;
}

/** The summary up to `to` (a distinct `to` is a distinct question, a cache miss). */
async function summary(role: QueryRole, to: string, query = ''): Promise<Answer> {
  const res = await fetch(`${role.url}/v1/stats/summary?from=${FROM}&to=${to}${query}`);
  const body = (await res.json()) as { events: number };
  return {
    status: res.status,
    events: body.events,
    source: res.headers.get('tally-read-source'),
    lagMs: Number(res.headers.get('tally-replica-lag-ms')),
  };
}

/**
 * Asks until the answer counts `events` and returns that answer. A role learns a new version from
 * the primary's notification a moment after the commit; until then it answers the older version.
 */
async function until(role: QueryRole, to: string, query: string, events: number): Promise<Answer> {
  let last: Answer | undefined;
  await waitFor(`${events} events up to ${to}${query}`, async () => {
    last = await summary(role, to, query);
    return last.events === events;
  });
  return last as Answer;
}

async function queryRole(t: TestContext, primary: string, replica: string, maxLagMs: number) {
  const config = loadConfig({
    DATABASE_URL: primary,
    TALLY_READ_DATABASE_URL: replica,
    TALLY_READ_MAX_LAG_MS: String(maxLagMs),
    // The read model (loaded from the primary) would answer the summaries: the replica is what is tested.
    TALLY_READ_MODEL: 'off',
    TALLY_QUERY_PORT: '0',
    TALLY_GRPC_PORT: '0',
    TALLY_DB_POOL_SIZE: '2',
    TALLY_LOG_LEVEL: 'silent',
  });
  const role = await startQueryRole(config, pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  t.after(() => role.stop());
  return role;
}

test('read replica: answers from a hot standby with their lag, strong and lagging reads from the primary, cache exact, fallback when it stops', async (t) => {
  const writer = await startTestTally(t, { TALLY_READ_MODEL: 'off' });
  const primaryUrl = (writer.database.pool.options as { connectionString: string }).connectionString;
  const replica = await startTestReplica(t, writer.dataDir, primaryUrl);
  t.diagnostic(`replica from a base backup taken with ${replica.method}`);
  const standby = new pg.Pool({ connectionString: replica.connectionString, max: 1 });
  t.after(() => standby.end().catch(() => undefined));
  const inRecovery = await standby.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  assert.equal(inRecovery.rows[0].r, true, 'the replica is a hot standby');

  /** Waits until the standby has replayed everything the primary has written so far. */
  const replayed = async () => {
    const { rows } = await writer.database.pool.query<{ lsn: string }>(
      'SELECT pg_current_wal_lsn()::text AS lsn',
    );
    await waitFor('the replica to replay the primary', async () => {
      const r = await standby.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [
        rows[0].lsn,
      ]);
      return r.rows[0].ok;
    });
  };

  // `tolerant` takes any lag (it says how much); `exact` none, so a replica behind leaves it to the primary.
  const tolerant = await queryRole(t, primaryUrl, replica.connectionString, 3_600_000);
  const exact = await queryRole(t, primaryUrl, replica.connectionString, 0);
  const grpcClient = analyticsClient(tolerant.grpcPort);
  t.after(() => grpcClient.close());

  // Cached before the first batch: a role answers 2 here only once it knows the batch's version.
  for (const role of [tolerant, exact]) assert.equal((await summary(role, '2025-03-02')).events, 0);
  assert.equal((await postJson(`${writer.url}/v1/events`, [event('a'), event('b')])).status, 202);
  await replayed();
  await until(tolerant, '2025-03-02', '', 2);
  await until(exact, '2025-03-02', '', 2);
  // Caught up: the replica answers, 0 behind; the same question again is the cache's.
  assert.deepEqual(await summary(tolerant, '2025-03-03'), {
    status: 200,
    events: 2,
    source: 'replica',
    lagMs: 0,
  });
  assert.deepEqual(await summary(tolerant, '2025-03-03'), {
    status: 200,
    events: 2,
    source: 'cache',
    lagMs: 0,
  });
  assert.deepEqual(await summary(exact, '2025-03-03'), {
    status: 200,
    events: 2,
    source: 'replica',
    lagMs: 0,
  });
  // The scan engine (breakdown) and the product questions' raw rows (retention) on the replica's
  // snapshot answer as the primary does.
  for (const path of [
    `/v1/stats/breakdown?from=${FROM}&to=2025-03-03&dimension=page&metrics=visitors,visits,page_views`,
    `/v1/stats/retention?from=${FROM}&to=2025-03-03&period=day&periods=2`,
  ]) {
    const fromReplica = await fetch(`${tolerant.url}${path}`);
    // A filter that leaves every event in: another question, so not the replica's answer cached.
    const fromPrimary = await fetch(`${tolerant.url}${path}&consistency=strong&filter=page!=/nowhere`);
    assert.deepEqual([fromReplica.status, fromPrimary.status], [200, 200], path);
    assert.equal(fromReplica.headers.get('tally-read-source'), 'replica', path);
    assert.equal(fromPrimary.headers.get('tally-read-source'), 'primary', path);
    assert.deepEqual(await fromReplica.json(), await fromPrimary.json(), path);
  }
  // consistency=strong: the primary.
  assert.deepEqual(await summary(tolerant, '2025-03-04', '&consistency=strong'), {
    status: 200,
    events: 2,
    source: 'primary',
    lagMs: 0,
  });

  // Replay paused: the replica keeps the first batch's data while the primary moves on.
  await standby.query('SELECT pg_wal_replay_pause()');
  assert.equal((await postJson(`${writer.url}/v1/events`, event('c'))).status, 202);
  // Behind and bounded by 0: the primary answers, exact (once the role knows the new version).
  assert.deepEqual(await until(exact, '2025-03-03', '', 3), {
    status: 200,
    events: 3,
    source: 'primary',
    lagMs: 0,
  });
  // The tolerant role knows the new version once its cached answer of the old one is left.
  await until(tolerant, '2025-03-02', '&consistency=strong', 3);
  // Within its bound: the replica answers its older data, and says it may be behind.
  const behind = await summary(tolerant, '2025-03-03');
  assert.equal(behind.status, 200);
  assert.equal(behind.source, 'replica');
  assert.equal(behind.events, 2);
  assert.ok(behind.lagMs > 0, `a lag is reported: ${behind.lagMs}`);
  // …cached under the replica's version, not the primary's: asked again, not a cache hit of it.
  const again = await summary(tolerant, '2025-03-03');
  assert.deepEqual(
    { ...again, lagMs: again.lagMs > 0 },
    { status: 200, events: 2, source: 'replica', lagMs: true },
  );
  // gRPC alike: the same answer, its source and lag in the trailer; `tally-consistency` metadata.
  const viaGrpc = await grpcClient.callWith('GetSummary', { from: FROM, to: '2025-03-03' }, {});
  assert.equal(viaGrpc.response.events, 2);
  assert.equal(viaGrpc.trailer['tally-read-source'], 'replica');
  assert.ok(Number(viaGrpc.trailer['tally-replica-lag-ms']) > 0);
  const strongGrpc = await grpcClient.callWith(
    'GetSummary',
    { from: FROM, to: '2025-03-10' },
    { 'tally-consistency': 'strong' },
  );
  assert.equal(strongGrpc.response.events, 3);
  assert.deepEqual(
    [strongGrpc.trailer['tally-read-source'], strongGrpc.trailer['tally-replica-lag-ms']],
    ['primary', '0'],
  );
  assert.deepEqual(await summary(tolerant, '2025-03-03', '&consistency=strong'), {
    status: 200,
    events: 3,
    source: 'primary',
    lagMs: 0,
  });

  // Replay resumed: once the replica holds the primary's version, it answers the new data, 0 behind.
  await standby.query('SELECT pg_wal_replay_resume()');
  await replayed();
  assert.deepEqual(await summary(tolerant, '2025-03-08'), {
    status: 200,
    events: 3,
    source: 'replica',
    lagMs: 0,
  });
  assert.deepEqual(await summary(tolerant, '2025-03-08'), {
    status: 200,
    events: 3,
    source: 'cache',
    lagMs: 0,
  });

  // The replica stops: the primary answers, no 5xx; readiness says the replica is degraded.
  await standby.end();
  await replica.stop();
  assert.equal((await postJson(`${writer.url}/v1/events`, event('d'))).status, 202);
  assert.deepEqual(await until(tolerant, '2025-03-08', '', 4), {
    status: 200,
    events: 4,
    source: 'primary',
    lagMs: 0,
  });
  assert.deepEqual(await until(exact, '2025-03-03', '', 4), {
    status: 200,
    events: 4,
    source: 'primary',
    lagMs: 0,
  });
  assert.deepEqual(await summary(tolerant, '2025-03-09'), {
    status: 200,
    events: 4,
    source: 'primary',
    lagMs: 0,
  });
  const metrics = await (await fetch(`${exact.url}/metrics`)).text();
  const fallbacks = (reason: string) =>
    Number(
      new RegExp(`^tally_read_replica_fallbacks_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(
        metrics,
      )?.[1] ?? 0,
    );
  assert.ok(fallbacks('lag') >= 1, 'the strict role left answers to the primary for lag');
  assert.ok(fallbacks('unreachable') >= 1, 'and for a replica down');
  const ready = await fetch(`${tolerant.url}/ready`);
  const readiness = (await ready.json()) as { checks: Record<string, string> };
  assert.equal(ready.status, 200);
  assert.equal(readiness.checks.read_replica, 'degraded');
});
