import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

const MIGRATIONS = fileURLToPath(new URL('../../src/store/migrations/', import.meta.url));

/**
 * Applies the migrations whose file names sort before `first` as the runner does (migrate.ts),
 * one transaction each: a database as a release before `first` left it. `migrate()` then applies
 * the rest.
 */
export async function migrateBefore(pool: pg.Pool, first: string): Promise<void> {
  await pool.query('CREATE SCHEMA IF NOT EXISTS tally');
  await pool.query(`CREATE TABLE IF NOT EXISTS tally.schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
  const files = (await readdir(MIGRATIONS)).filter((f) => f.endsWith('.sql') && f < first).sort();
  for (const file of files) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(await readFile(join(MIGRATIONS, file), 'utf8'));
      await client.query('INSERT INTO tally.schema_migrations (name) VALUES ($1)', [file]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }
}
