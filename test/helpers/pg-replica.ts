import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  cpSync,
  mkdirSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/store/embedded-postgres.ts';
import { cleanupAfter, guardTempDir } from './interrupt.ts';

export interface TestReplica extends EmbeddedPostgresHandle {
  /** How the base backup was taken: `pg_basebackup` or the SQL backup API (pg_backup_start/stop). */
  method: string;
}

const SLOT = 'tally_test_replica';

/**
 * Starts a streaming hot standby of the embedded cluster in `primaryDataDir` (Tally's data
 * directory, cluster in `pg/`), from a base backup, with `standby.signal` and `primary_conninfo`
 * (what `pg_basebackup -R` writes), streaming through a physical replication slot.
 *
 * The base backup: `pg_basebackup` when one of the server's major version is found (next to the
 * embedded binaries, which ship none, or on PATH), else the same backup by hand through the SQL
 * backup API: pg_backup_start, a copy of the data directory (without WAL, pid file and slots),
 * pg_backup_stop's label as backup_label. The standby then fetches all the WAL it needs by streaming.
 */
export async function startTestReplica(
  t: TestContext,
  primaryDataDir: string,
  primaryUrl: string,
): Promise<TestReplica> {
  const dataDir = await mkdtemp(join(tmpdir(), 'tally-replica-'));
  guardTempDir(t, dataDir);
  const source = join(primaryDataDir, 'pg');
  const target = join(dataDir, 'pg');
  const url = new URL(primaryUrl);
  const admin = new pg.Client({ connectionString: primaryUrl });
  await admin.connect();
  let method: string;
  try {
    const { rows } = await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    const major = Math.floor(Number(rows[0].v) / 10000);
    await admin.query('SELECT pg_create_physical_replication_slot($1, true)', [SLOT]);
    const basebackup = await findBasebackup(major);
    if (basebackup !== undefined) {
      method = basebackup;
      const run = spawnSync(
        basebackup,
        [
          '-D',
          target,
          '-R',
          '-X',
          'stream',
          '-c',
          'fast',
          '-S',
          SLOT,
          '-h',
          url.hostname,
          '-p',
          url.port,
          '-U',
          url.username,
        ],
        { env: { ...process.env, PGPASSWORD: decodeURIComponent(url.password) }, encoding: 'utf8' },
      );
      if (run.status !== 0) throw new Error(`pg_basebackup failed: ${run.stderr}`);
    } else {
      method = `the SQL backup API (no pg_basebackup of major version ${major} here)`;
      await admin.query("SELECT pg_backup_start('tally-test-replica', true)");
      copyCluster(source, target);
      const stop = await admin.query<{ labelfile: string }>('SELECT labelfile FROM pg_backup_stop(false)');
      writeFileSync(join(target, 'backup_label'), stop.rows[0].labelfile);
      writeFileSync(join(target, 'standby.signal'), '');
      const conninfo = `host=${url.hostname} port=${url.port} user=${url.username} password=${decodeURIComponent(url.password)}`;
      appendFileSync(
        join(target, 'postgresql.auto.conf'),
        `primary_conninfo = '${conninfo}'\nprimary_slot_name = '${SLOT}'\n`,
      );
    }
  } finally {
    await admin.end();
  }
  // The server runs as the owner of the primary's files (the `postgres` user under root).
  const owner = statSync(source);
  chownTree(target, owner.uid, owner.gid);
  chmodSync(target, 0o700);
  const handle = await startEmbeddedPostgres({ dataDir });
  cleanupAfter(t, async () => {
    await handle.stop();
    await rm(dataDir, { recursive: true, force: true });
  });
  return { ...handle, method };
}

/** A pg_basebackup that can copy a server of `major` (it refuses newer servers than itself). */
async function findBasebackup(major: number): Promise<string | undefined> {
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { pg_ctl: string };
  for (const candidate of [join(dirname(binaries.pg_ctl), 'pg_basebackup'), 'pg_basebackup']) {
    const run = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    const found = /(\d+)\.\d+/.exec(run.stdout ?? '');
    if (run.status === 0 && found !== null && Number(found[1]) === major) return candidate;
  }
  return undefined;
}

/** The cluster's files as pg_basebackup copies them: no WAL, pid file, log or replication slots. */
function copyCluster(source: string, target: string): void {
  const skip = new Set(['postmaster.pid', 'postmaster.opts', 'server.log']);
  cpSync(source, target, {
    recursive: true,
    preserveTimestamps: true,
    filter: (path) => {
      const rel = path.slice(source.length + 1);
      if (skip.has(rel)) return false;
      // Directories stay (empty); the standby streams the WAL it needs from the slot.
      if (rel.startsWith('pg_wal/')) return statSync(path).isDirectory();
      if (/^(pg_replslot|pg_stat_tmp)\//.test(rel)) return false;
      return true;
    },
  });
  for (const dir of ['pg_wal', 'pg_replslot', 'pg_stat_tmp'])
    mkdirSync(join(target, dir), { recursive: true });
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (!statSync(path).isDirectory()) return;
  for (const entry of readdirSync(path)) chownTree(join(path, entry), uid, gid);
}
