import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestPostgres } from '../helpers/kafka-process.ts';

/**
 * Migration 019's planner settings for tally.refresh_sessions (why: its header). A later
 * CREATE OR REPLACE FUNCTION of refresh_sessions drops them silently; this says so instead.
 */
test(
  'tally.refresh_sessions keeps its planner settings after every migration',
  { timeout: 120_000 },
  async (t) => {
    const db = await startTestPostgres(t);
    const { rows } = await db.pool.query<{ config: string[] | null }>(
      `SELECT p.proconfig AS config
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = 'tally' AND p.proname = 'refresh_sessions'`,
    );
    assert.equal(rows.length, 1, 'one tally.refresh_sessions');
    assert.deepEqual([...(rows[0].config ?? [])].sort(), [
      'enable_hashjoin=off',
      'enable_mergejoin=off',
      'plan_cache_mode=force_custom_plan',
    ]);
  },
);
