-- tally.refresh_sessions plans its statements once per connection for small batches, and for
-- each call's own arguments for large ones.
--
-- Why: migration 019 made the refresh plan every statement for each call (plan_cache_mode =
-- force_custom_plan), for the processor's batches of thousands of events: a plan made for its
-- arguments knows how many events come (PostgreSQL counts the elements of a constant array), and a
-- generic plan, which does not, read the touched visits 3.5 to 4.6 times slower in batches of 5,000
-- (bench/write-profile.ts; docs/benchmarks.md, "Plans by batch size"). But the micro-batcher of
-- `tally start` commits single events in batches of ~15-25, and there the planning was the larger
-- part of the refresh: 1.4 of 2.8 ms a batch of 25 for the merge and the touched visits' lookup,
-- whose generic plans ran as fast as the custom ones at 25, 100 and 400 events.
--
-- So the refresh becomes a wrapper that chooses the mode by the number of events of the call (at
-- most 500: generic plans, kept by the connection's plan cache and made again when
-- a table's statistics change, e.g. after first-statistics.ts's ANALYZE) and calls migration
-- 028's function, renamed tally.merge_visits, which keeps 019's other settings (no hash or merge
-- joins). A setting made by set_config(…, true) inside a function with a SET clause for it ends
-- with the function, so the caller's mode is untouched.
--
-- The risk 019 named stays bounded: a generic plan made while a table has no statistics (the
-- lookup of a user's visits through sessions_started) is kept only until the table's first
-- ANALYZE, which the writer runs after its first 500 rows (first-statistics.ts) and autovacuum
-- repeats as it grows; each one makes the connections plan again. And it is used only for
-- batches of at most 500 events.
--
-- Exactness: the mode chooses among plans of the same statements (migration 019's header).

ALTER FUNCTION tally.refresh_sessions(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  RENAME TO merge_visits;
ALTER FUNCTION tally.merge_visits(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  RESET plan_cache_mode;

-- Migration 028's arguments and meaning.
CREATE FUNCTION tally.refresh_sessions(
  p_take bool[], p_project text[], p_user_id text[], p_ts float8[], p_session_id text[],
  p_event_id text[], p_type text[], p_path text[], p_is_bot bool[],
  p_hostname text[], p_referrer_host text[], p_channel text[], p_utm_source text[], p_utm_medium text[],
  p_utm_campaign text[], p_utm_term text[], p_utm_content text[], p_browser text[], p_os text[],
  p_device text[], p_country text[], p_timeout_ms float8, p_raw_cutoff float8
) RETURNS void LANGUAGE plpgsql
  SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
  IF cardinality(p_project) <= 500 THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
  END IF;
  PERFORM tally.merge_visits(
    p_take, p_project, p_user_id, p_ts, p_session_id, p_event_id, p_type, p_path, p_is_bot,
    p_hostname, p_referrer_host, p_channel, p_utm_source, p_utm_medium, p_utm_campaign, p_utm_term,
    p_utm_content, p_browser, p_os, p_device, p_country, p_timeout_ms, p_raw_cutoff);
END
$$;
