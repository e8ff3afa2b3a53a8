import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { BatchWriter } from '../../src/store/batch-writer.ts';
import { openDatabase } from '../../src/store/database.ts';
import { RawPartitions } from '../../src/store/partitions.ts';
import { prng, toTallyEvent, type OracleEvent } from '../helpers/oracle.ts';
import { requireAllSuites } from '../helpers/require-tool.ts';
import { assertExactlyOnce, expectedRollups, storedState } from '../helpers/stored-state.ts';
import { recordWriteOrder, WRITE_ORDER } from '../helpers/write-order.ts';

// The other suites run on the embedded binaries (one PostgreSQL major version); production runs
// whatever the operator has (the Kubernetes manifests say 17, these machines run 15). This suite
// runs the migrations and the write path on the server at TALLY_COMPAT_DATABASE_URL, in a
// database of its own that it drops afterwards. .ci/run points it at the machine's PostgreSQL.
const SERVER = process.env.TALLY_COMPAT_DATABASE_URL;
const MINUTE = 60_000;

test('another PostgreSQL version: migrations, exactly-once batches, rollups and the user-bits rebuild', async (t) => {
  if (SERVER === undefined) {
    const reason = 'SKIPPED: TALLY_COMPAT_DATABASE_URL is not set (a PostgreSQL server of another version)';
    if (requireAllSuites()) throw new Error(`${reason}; TALLY_REQUIRE_ALL_SUITES=1 forbids skipping`);
    process.stderr.write(`\n*** ${reason} ***\n\n`);
    t.skip(reason);
    return;
  }
  const name = `tally_compat_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: SERVER });
  await admin.connect();
  t.after(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });
  const { rows: version } = await admin.query<{ server_version: string }>('SHOW server_version');
  t.diagnostic(`PostgreSQL ${version[0].server_version}`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(SERVER);
  url.pathname = `/${name}`;

  const db = await openDatabase(
    { kind: 'external', connectionString: url.toString() },
    { poolSize: 3, applicationName: 'test-compat', logger: pino({ level: 'silent' }) },
  );
  t.after(() => db.stop());
  const writer = new BatchWriter({
    pool: db.pool,
    partitions: new RawPartitions(db.pool, undefined),
    storeRaw: true,
  });
  const random = prng(15);
  const now = Date.now();
  const events: OracleEvent[] = Array.from({ length: 2000 }, (_, i) => ({
    event_id: `c-${i}`,
    type: random() < 0.6 ? 'page_view' : 'click',
    user_id: `u-${Math.floor(random() * 300)}`,
    ts: now - Math.floor(random() * 3 * 1440) * MINUTE,
    page_url: `/p/${Math.floor(random() * 20)}`,
  }));
  const order = await recordWriteOrder(db.pool);
  // Two batches overlapping by half: the second half of the first is sent again. Both lock the
  // shared rows last.
  await writer.write({ events: events.slice(0, 1200).map((e) => toTallyEvent(e)) });
  assert.deepEqual(await order(), WRITE_ORDER, 'all new');
  await writer.write({ events: events.slice(600).map((e) => toTallyEvent(e)) });
  assert.deepEqual(await order(), WRITE_ORDER, 'half stored already');
  await assertExactlyOnce(db.pool, events);

  // The rebuild of migration 016 (bench/dataset.ts's) on raw rows written directly.
  await db.pool.query(
    `INSERT INTO tally.events (project, event_id, type, user_id, ts, received_at)
     SELECT 'copy', event_id, type, user_id, ts, received_at FROM tally.events WHERE project = 'default'`,
  );
  await db.pool.query(`SELECT tally.rebuild_user_sets('copy')`);
  const copy = await storedState(db.pool, 'copy');
  assert.deepEqual(copy.users, expectedRollups(events).users);
  assert.equal(copy.userBitCount, copy.users.length);
});
