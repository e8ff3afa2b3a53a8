-- tally.refresh_sessions plans its statements the same way whatever statistics PostgreSQL has.
-- Every join the refresh makes is a batch's few keys against a big indexed table: the clusters'
-- users against tally.sessions' primary key, the ranges to read against tally.events' index on
-- (project, user_id, ts), the touched and re-cut visits against the primary key again. A nested
-- loop over those indexes reads only the rows the batch needs, however large the tables grow.
-- Before a table's first ANALYZE (a new database, or a new day's partition filled fast, as by a
-- backfill or the benchmark: autovacuum's first look comes up to a minute later) the planner
-- guesses instead, and it guessed badly (docs/benchmarks.md, "Write throughput after issue 20:
-- the start of a new database"):
--   * a merge join of a whole partition, sorted on disk, for the 1,500 ranges of one batch;
--   * the lateral lookup of a cluster's visits through sessions_started (project, started_at)
--     with the user as a filter, so every lookup walked all of the project's visits: PL/pgSQL
--     keeps the plan it made for the empty table of the first batches (both indexes looked
--     equally cheap then) until an ANALYZE of tally.sessions, however full the table has grown.
-- Hence, for this function only: no hash or merge joins (only disfavoured: the planner still
-- takes one where nothing else can run), and a plan made for each call's own arguments and the
-- tables' current sizes rather than a generic plan kept from the first calls (a few
-- milliseconds of planning per batch).
--
-- Exactness: these settings choose among plans of the same statements, which PostgreSQL makes
-- return the same rows; nothing in the function depends on the order rows come in except through
-- an ORDER BY (array_agg in tally.cut_visits, the windows), and the unordered array_aggs at the
-- end of the first statement are aggregates of one node over one input, so their elements stay
-- aligned whatever the plan. The property tests of test/store/sessions*.test.ts run unchanged.
--
-- TRICKY: CREATE OR REPLACE FUNCTION resets a function's SET clauses. A migration that replaces
-- tally.refresh_sessions must repeat them (test/store/sessions-plans.integration.test.ts checks).

ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET enable_hashjoin = off;
ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET enable_mergejoin = off;
ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET plan_cache_mode = force_custom_plan;
