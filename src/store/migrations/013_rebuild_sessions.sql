-- Visits over the events stored before migration 010: migration 010 created tally.sessions
-- empty, and tally.refresh_sessions only recomputes the visits next to fresh events, so without
-- this the first new event of a user active within the timeout would start a visit of its own,
-- and every older visit would be missing. Rebuilds every project that has raw rows with the
-- default timeout (TALLY_SESSION_TIMEOUT_MIN = 30), recording it in tally.session_settings; a
-- database run with another timeout then needs `tally sessions rebuild` (docs/web-analytics.md),
-- which the writer's check says as soon as a batch comes with that timeout. The way migration 007
-- rebuilt the user bits over existing data.
--
-- Events stored before migration 010 have no dimensions (no user_agent, country or derived
-- columns): their visits are counted with those dimensions null.

-- One scan of the whole table per project: no statement timeout (pool.ts sets 60 s).
SET LOCAL statement_timeout = 0;

-- The projects that have raw rows, one index probe each (a skip scan over events_user) rather
-- than a scan of the whole table; tally.data_versions does not list projects written before
-- migration 004.
CREATE FUNCTION tally.raw_projects() RETURNS SETOF text LANGUAGE sql STABLE AS $$
  WITH RECURSIVE p(project) AS (
    SELECT min(e.project) FROM tally.events e
    UNION ALL
    SELECT (SELECT min(e.project) FROM tally.events e WHERE e.project > p.project)
      FROM p WHERE p.project IS NOT NULL
  )
  SELECT p.project FROM p WHERE p.project IS NOT NULL
$$;

-- Answers cached from the (missing) visits must not be served again: bump the versions, the way
-- sessions-store.ts rebuildSessions does, before the project locks (migration 011's lock order).
WITH v AS (
  INSERT INTO tally.data_versions AS v (project, version)
  SELECT r.project, 1 FROM tally.raw_projects() AS r(project) ORDER BY 1
  ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
  RETURNING project, version
)
SELECT pg_notify('tally_data_versions', v.version || ' ' || v.project) FROM v;

SELECT tally.rebuild_sessions(r.project, 30 * 60000) FROM tally.raw_projects() AS r(project) ORDER BY 1;
