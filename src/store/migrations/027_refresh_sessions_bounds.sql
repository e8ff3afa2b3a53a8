-- tally.refresh_sessions plans and opens, for its append check, only the raw partitions that can
-- hold the rows it looks for, and plans only the cuts that have visits to cut.
--
-- Why: the refresh's cost grew with the days of raw storage. tally.events has a partition a day
-- (kept forever by default); the three statements reading it (the append check, the cut of the
-- recomputed visits, the cut of the appended ones) each join the batch's keys to every partition,
-- and migration 019 plans every call for its own arguments (force_custom_plan), so every call
-- planned every partition three times and then opened each. Measured (issue 24, `PGSS=1 node
-- bench/write-profile.ts single 400 25`, batches of 25 single events, the size the micro-batcher
-- of `tally start` commits under load; 90 empty partitions added): 55 ms of PostgreSQL time a
-- batch against 10 ms with one partition, 35 ms of it planning those statements (14 ms the
-- append check's statement, 10 ms each cut).
--
-- The append check (does V's first raw row still exist, migration 015) gets bounds on ts that are
-- constants of the call (PL/pgSQL variables, folded into the custom plan), so PostgreSQL prunes
-- the partitions outside them as it plans. V is a gap visit starting at or before hi + timeout of
-- its cluster. Up to: the batch's last new gap event plus the timeout. From: the earliest, over
-- the batch's users, of the start of the user's latest gap visit starting at or before its last
-- new event plus the timeout. An appended user has one cluster, ending at that last event, and its
-- V is that latest visit: a later one W starting before hi + timeout would either meet
-- [lo - timeout, hi + timeout] (two touched visits: no append) or end before
-- lo - timeout <= V.ended_at while starting after V did, which two gap visits of one user cannot
-- (they do not overlap). So V starts within the bounds. Exactness does not rest on that: a check
-- that finds no row sends the user the general way (its visits recomputed from the raw rows,
-- migration 011), exact for every user; a bound too narrow would only cost time.
--
-- The bounds are widened to whole UTC days (the partitions'), so that for a partition with
-- statistics they select every row and change no estimate: only which partitions are planned.
-- TRICKY: exact bounds (the rows' own instants) looked selective to the planner, as PostgreSQL's
-- statistics of a partition filled in time order always end before the newest rows, and it then
-- read the whole bounded range once and matched every key against it: the cut of the appended
-- visits took 3.3 s a batch of 5,000 instead of 80 ms (`PGSS=1 node bench/write-profile.ts bench
-- 60 5000`). Even day bounds on a partition with no statistics yet (a new one, for up to a second:
-- src/store/first-statistics.ts) took 2.3 s for the first batch of a new database in the cut of
-- the recomputed visits; hence no bounds in the cuts, which still plan every partition (not
-- fixed: docs/benchmarks.md, "Issue 24: the refresh and the days of raw storage").
--
-- And the two cuts run only when they have ranges (v_p, v_ap not NULL): a batch of live traffic
-- has mostly appended users, a batch of late events mostly recomputed ones, and each statement
-- took 0.8 ms to plan with nothing to do.
--
-- TRICKY: CREATE OR REPLACE FUNCTION resets a function's SET clauses; migration 019's are repeated
-- at the end (test/store/sessions-plans.integration.test.ts checks them).

CREATE OR REPLACE FUNCTION tally.refresh_sessions(
  p_project text[], p_user_id text[], p_ts float8[], p_session_id text[], p_timeout_ms float8
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_timeout interval := p_timeout_ms * interval '1 millisecond';
  v_lock int8;
  v_project text;
  v_stored float8;
  v_p text[];
  v_u text[];
  v_k text[];
  v_lo timestamptz[];
  v_hi timestamptz[];
  v_ap text[];
  v_au text[];
  v_alo timestamptz[];
  v_ahi timestamptz[];
  v_from timestamptz;
  v_to timestamptz;
BEGIN
  IF coalesce(cardinality(p_project), 0) = 0 THEN
    RETURN;
  END IF;
  FOR v_project IN SELECT DISTINCT x.p COLLATE "C" FROM unnest(p_project) AS x(p) ORDER BY 1 LOOP
    PERFORM tally.session_project_lock(v_project, false);
  END LOOP;
  -- A project's first visits record the timeout they are cut with; a project has no visits
  -- before (a rebuild writes the row too). The same order as the project locks.
  INSERT INTO tally.session_settings (project, timeout_ms)
  SELECT x.p, p_timeout_ms
    FROM (SELECT DISTINCT x.p COLLATE "C" AS p FROM unnest(p_project) AS x(p)) AS x
   WHERE NOT EXISTS (SELECT 1 FROM tally.session_settings s WHERE s.project = x.p)
   ORDER BY 1
  ON CONFLICT (project) DO NOTHING;
  SELECT s.project, s.timeout_ms INTO v_project, v_stored
    FROM tally.session_settings s
   WHERE s.project = ANY (p_project) AND s.timeout_ms <> p_timeout_ms
   ORDER BY s.project COLLATE "C"
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the visits of project % were built with a session timeout of % min, and this process uses % min: run `tally sessions rebuild` with the new TALLY_SESSION_TIMEOUT_MIN, or set it back to % (and restart)',
      v_project, v_stored / 60000, p_timeout_ms / 60000, v_stored / 60000
      USING ERRCODE = 'TL001';
  END IF;
  FOR v_lock IN
    SELECT DISTINCT hashtextextended(x.p || chr(31) || x.u, 0) FROM unnest(p_project, p_user_id) AS x(p, u) ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock(v_lock);
  END LOOP;

  -- The bounds of the append check's raw rows, in whole UTC days (the header): from the start of the
  -- earliest of the users' latest gap visits starting before their last new event plus the timeout,
  -- to the batch's last new event plus the timeout. Constants of the plan, so only the partitions
  -- between them are planned and opened.
  SELECT date_trunc('day', min(l.started_at), 'UTC'), date_trunc('day', max(f.hi) + v_timeout, 'UTC') + interval '24 hours'
    INTO v_from, v_to
    FROM (SELECT x.p, x.u, max(to_timestamp(x.ts / 1000.0)) AS hi
            FROM unnest(p_project, p_user_id, p_ts, p_session_id) AS x(p, u, ts, s)
           WHERE coalesce(nullif(x.s, ''), '') = ''
           GROUP BY x.p, x.u) AS f
    LEFT JOIN LATERAL (
      SELECT s.started_at
        FROM tally.sessions s
       WHERE s.project = f.p AND s.user_id = f.u AND s.session_key = ''
         AND s.started_at <= f.hi + v_timeout
       ORDER BY s.started_at DESC
       LIMIT 1
    ) AS l ON true;

  WITH fresh AS (
    -- The same conversion as tally.write_events, so ts equals the stored value exactly.
    SELECT DISTINCT x.p, x.u, coalesce(nullif(x.s, ''), '') AS k, to_timestamp(x.ts / 1000.0) AS ts
      FROM unnest(p_project, p_user_id, p_ts, p_session_id) AS x(p, u, ts, s)
  ),
  -- A user's new gap events cut the way visits are: a cluster's events are at most the timeout
  -- apart, and the visits it touches are exactly those meeting [lo - timeout, hi + timeout].
  clusters AS (
    SELECT c.p, c.u, min(c.ts) AS lo, max(c.ts) AS hi, count(*) AS n,
           count(*) OVER (PARTITION BY c.p, c.u) = 1 AS alone
      FROM (
        SELECT x.*, sum(x.starts) OVER (PARTITION BY x.p, x.u ORDER BY x.ts ROWS UNBOUNDED PRECEDING) AS c
          FROM (
            SELECT f.p, f.u, f.ts,
                   ((f.ts - lag(f.ts) OVER (PARTITION BY f.p, f.u ORDER BY f.ts) > v_timeout) IS NOT FALSE)::int4 AS starts
              FROM fresh f
             WHERE f.k = ''
          ) AS x
      ) AS c
     GROUP BY c.p, c.u, c.c
  ),
  -- Each cluster with the visits it touches (none: one row with NULLs), how many (m), and whether
  -- it is appended to its one visit (the append case above; alone: the user's only cluster).
  near AS (
    SELECT c.p, c.u, c.lo, c.hi, v.started_at, v.ended_at,
           row_number() OVER w = 1 AS first,
           (c.alone AND count(v.started_at) OVER w = 1 AND c.lo > v.ended_at
            -- V's first raw row is still stored (retention drops the oldest days first, so then
            -- all of V is): else V is recomputed from the rows still stored, as migration 011 says.
            AND EXISTS (SELECT 1 FROM tally.events e
                         WHERE e.project = c.p AND e.user_id = c.u AND e.ts = v.started_at
                           AND e.ts >= v_from AND e.ts < v_to
                           AND coalesce(nullif(e.session_id, ''), '') = '')) IS TRUE AS append
      FROM clusters c
      LEFT JOIN LATERAL (
        SELECT s.started_at, s.ended_at
          FROM tally.sessions s
         WHERE s.project = c.p AND s.user_id = c.u AND s.session_key = ''
           AND s.started_at <= c.hi + v_timeout
         ORDER BY s.started_at DESC
         LIMIT c.n + 1
      ) AS v ON v.ended_at >= c.lo - v_timeout
    WINDOW w AS (PARTITION BY c.p, c.u, c.lo)
  ),
  touched AS (
    SELECT n.p AS project, n.u AS user_id, ''::text AS session_key, n.started_at
      FROM near n
     WHERE n.started_at IS NOT NULL AND NOT n.append
    -- UNION: one visit may meet two clusters.
    UNION
    SELECT s.project, s.user_id, s.session_key, s.started_at
      FROM (SELECT DISTINCT f.p, f.u, f.k FROM fresh f WHERE f.k <> '') AS f
      JOIN tally.sessions s ON s.project = f.p AND s.user_id = f.u AND s.session_key = f.k
  ),
  gone AS (
    DELETE FROM tally.sessions s
     USING touched t
     WHERE s.project = t.project AND s.user_id = t.user_id AND s.session_key = t.session_key
       AND s.started_at = t.started_at
    RETURNING s.project, s.user_id, s.session_key, s.started_at, s.ended_at
  ),
  -- The ranges to read: the touched visits and the new events' instants, merged where they
  -- overlap (a new event inside a touched visit, several new events at one instant) so that no
  -- raw row is read twice; an explicit session_id's parts are all merged into one range.
  parts AS (
    SELECT g.project AS p, g.user_id AS u, g.session_key AS k, g.started_at AS lo, g.ended_at AS hi,
           false AS append
      FROM gone g
    UNION ALL
    SELECT n.p, n.u, '', n.lo, n.hi, n.append FROM near n WHERE n.first
    UNION ALL
    SELECT f.p, f.u, f.k, f.ts, f.ts, false FROM fresh f WHERE f.k <> ''
  ),
  starts AS (
    SELECT x.*, (x.k = '' AND x.lo > v_timeout + max(x.hi) OVER (
             PARTITION BY x.p, x.u, x.k ORDER BY x.lo, x.hi ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           )) IS NOT FALSE AS starts
      FROM parts x
  ),
  islands AS (
    SELECT x.*, sum(x.starts::int4) OVER (
             PARTITION BY x.p, x.u, x.k ORDER BY x.lo, x.hi ROWS UNBOUNDED PRECEDING) AS island
      FROM starts x
  ),
  ranges AS (
    SELECT i.p, i.u, i.k, min(i.lo) AS lo, max(i.hi) AS hi, bool_and(i.append) AS append
      FROM islands i
     GROUP BY i.p, i.u, i.k, i.island
  )
  -- An appended user's one part is its cluster (its visit is not gone): a range of its own.
  SELECT array_agg(r.p) FILTER (WHERE NOT r.append), array_agg(r.u) FILTER (WHERE NOT r.append),
         array_agg(r.k) FILTER (WHERE NOT r.append), array_agg(r.lo) FILTER (WHERE NOT r.append),
         array_agg(r.hi) FILTER (WHERE NOT r.append),
         array_agg(r.p) FILTER (WHERE r.append), array_agg(r.u) FILTER (WHERE r.append),
         array_agg(r.lo) FILTER (WHERE r.append), array_agg(r.hi) FILTER (WHERE r.append)
    INTO v_p, v_u, v_k, v_lo, v_hi, v_ap, v_au, v_alo, v_ahi
    FROM ranges r;

  -- Second statements: they must see the deletions done (a visit may come back with the same key).
  -- Each statement below only when it has visits to cut (the header).
  IF v_p IS NOT NULL THEN
    INSERT INTO tally.sessions
    SELECT * FROM tally.cut_visits(NULL, v_p, v_u, v_k, v_lo, v_hi, v_timeout);
  END IF;
  -- An appended user's cluster cuts into one gap visit N, which extends the user's latest gap
  -- visit starting before it: its one touched visit V (a gap visit between V and N would end
  -- after V, within the timeout of lo, so it would be touched too).
  IF v_ap IS NULL THEN
    RETURN;
  END IF;
  UPDATE tally.sessions s
     SET ended_at = c.ended_at,
         events = s.events + c.events,
         page_views = s.page_views + c.page_views,
         entry_page = CASE WHEN s.page_views > 0 THEN s.entry_page ELSE c.entry_page END,
         exit_page = CASE WHEN c.page_views > 0 THEN c.exit_page ELSE s.exit_page END,
         is_bot = s.is_bot OR c.is_bot
    FROM tally.cut_visits(NULL, v_ap, v_au, array_fill(''::text, ARRAY[cardinality(v_ap)]), v_alo, v_ahi,
                          v_timeout) AS c
   WHERE s.project = c.project AND s.user_id = c.user_id AND s.session_key = ''
     AND s.started_at = (SELECT x.started_at FROM tally.sessions x
                          WHERE x.project = c.project AND x.user_id = c.user_id AND x.session_key = ''
                            AND x.started_at < c.started_at
                          ORDER BY x.started_at DESC LIMIT 1);
END
$$;

ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET enable_hashjoin = off;
ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET enable_mergejoin = off;
ALTER FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8)
  SET plan_cache_mode = force_custom_plan;
