-- Visits (tally.sessions, migration 010) kept exact and incremental: tally.refresh_sessions
-- recomputes, inside the batch's own transaction, only the visits next to the batch's fresh
-- events, from the raw rows; tally.rebuild_sessions recomputes a whole project
-- (`tally sessions rebuild`). Both cut visits with the same rule (issue 20; the reference
-- implementation is test/helpers/sessionizer.ts): a gap visit (session_id NULL, session_key '')
-- ends where the next event of the user comes more than the timeout later (a gap equal to the
-- timeout does not split); an explicit session_id is one visit whatever its gaps. Events are
-- ordered by (ts, event_id COLLATE "C"); a visit's dimensions are those of its first event.
--
-- Visits need raw storage: they are computed from tally.events. With raw storage off nothing is
-- written here (the writer calls refresh_sessions with the events it stored raw, none). Events
-- older than the raw retention have no raw rows: visits that ended before them stay as they were
-- computed (a rebuild keeps them too); a late event older than the retention is not stored raw and
-- touches no visit. A visit still touched after the raw rows of its start were dropped (a late
-- event within the timeout of its end, or more events of its session_id) is recomputed from the
-- rows still stored.

-- Raw rows cut into visits: one row per visit, every column of tally.sessions. The rows are
-- either all those of p_whole_project (the rebuild: one scan) or those of a set of disjoint
-- (project, user, session key, [lo, hi]) ranges (the refresh: one index scan each); the caller
-- passes NULL for the other, whose branch then reads nothing. A session key '' selects the gap
-- events of the range (session_id NULL or ''), any other key the events of that session_id.
-- TRICKY: the ranges must be disjoint, or a raw row would be read twice.
CREATE FUNCTION tally.cut_visits(
  p_whole_project text,
  p_project text[], p_user_id text[], p_key text[], p_lo timestamptz[], p_hi timestamptz[],
  p_timeout interval
) RETURNS SETOF tally.sessions LANGUAGE sql STABLE AS $$
  SELECT c.project, c.user_id, c.session_key, min(c.ts), max(c.ts), count(*)::int4,
         (count(*) FILTER (WHERE c.type = 'page_view'))::int4,
         (array_agg(c.path ORDER BY c.ts, c.event_id COLLATE "C") FILTER (WHERE c.type = 'page_view'))[1],
         (array_agg(c.path ORDER BY c.ts DESC, c.event_id COLLATE "C" DESC) FILTER (WHERE c.type = 'page_view'))[1],
         -- One first row per visit (the window's order): max() just picks its value.
         max(c.hostname) FILTER (WHERE c.first), max(c.referrer_host) FILTER (WHERE c.first),
         max(c.channel) FILTER (WHERE c.first), max(c.utm_source) FILTER (WHERE c.first),
         max(c.utm_medium) FILTER (WHERE c.first), max(c.utm_campaign) FILTER (WHERE c.first),
         max(c.utm_term) FILTER (WHERE c.first), max(c.utm_content) FILTER (WHERE c.first),
         max(c.browser) FILTER (WHERE c.first), max(c.os) FILTER (WHERE c.first),
         max(c.device) FILTER (WHERE c.first), max(c.country) FILTER (WHERE c.first),
         bool_or(c.is_bot)
    FROM (
      SELECT f.*, sum(f.first::int4) OVER (
               PARTITION BY f.project, f.user_id, f.session_key
               ORDER BY f.ts, f.event_id COLLATE "C" ROWS UNBOUNDED PRECEDING) AS visit
        FROM (
          SELECT x.*,
                 lag(x.ts) OVER w IS NULL OR (x.session_key = '' AND x.ts - lag(x.ts) OVER w > p_timeout) AS first
            FROM (
              SELECT e.project, e.user_id, r.k AS session_key, e.ts, e.event_id, e.type, e.path,
                     e.hostname, e.referrer_host, e.channel, e.utm_source, e.utm_medium, e.utm_campaign,
                     e.utm_term, e.utm_content, e.browser, e.os, e.device, e.country, e.is_bot
                FROM unnest(p_project, p_user_id, p_key, p_lo, p_hi) AS r(p, u, k, lo, hi)
                JOIN tally.events e
                  ON e.project = r.p AND e.user_id = r.u AND e.ts BETWEEN r.lo AND r.hi
                 AND coalesce(nullif(e.session_id, ''), '') = r.k
              UNION ALL
              SELECT e.project, e.user_id, coalesce(nullif(e.session_id, ''), ''), e.ts, e.event_id, e.type, e.path,
                     e.hostname, e.referrer_host, e.channel, e.utm_source, e.utm_medium, e.utm_campaign,
                     e.utm_term, e.utm_content, e.browser, e.os, e.device, e.country, e.is_bot
                FROM tally.events e
               WHERE e.project = p_whole_project
            ) AS x
          WINDOW w AS (PARTITION BY x.project, x.user_id, x.session_key ORDER BY x.ts, x.event_id COLLATE "C")
        ) AS f
    ) AS c
   GROUP BY c.project, c.user_id, c.session_key, c.visit
$$;

-- (Migration 015 replaces this function: a visit that a user's new events only extend is kept and
-- extended rather than recomputed from its raw rows; its header shows why the proof below still
-- holds.)
-- Recomputes the visits that the fresh events just inserted into tally.events touch (parallel
-- arrays, one element per event, ts in epoch ms as given to tally.write_events). Called in the
-- batch's transaction, after the raw rows were inserted; p_timeout_ms is the session timeout.
--
-- Why the recomputed rows are exactly right (gap visits; for the proof, the stored visits were
-- right for the raw rows before the batch, and N is the batch's fresh gap events of one user):
--   * A visit V is touched when some t in N lies in [V.started_at - timeout, V.ended_at + timeout].
--     An untouched visit is still a visit: no new event inside it, and the nearest events
--     before and after it are still more than the timeout away (the old ones were; the new ones
--     are not within the timeout of it). So the visits to recompute are made exactly of the rows
--     of the touched visits and of N.
--   * Those rows cut alone give the same visits as all rows cut together: between two of them
--     that are consecutive in time, an untouched visit U can only lie where the two are more than
--     the timeout apart (U is more than the timeout from every new event and from the old visits
--     next to it), so no gap is hidden and none is invented.
--   * Which visits are touched: N is cut into clusters the way visits are cut (consecutive
--     events at most the timeout apart). A cluster [lo, hi] touches exactly the visits meeting
--     [lo - timeout, hi + timeout] (such a visit is within the timeout of lo, of hi, or of an
--     event next to the gap it lies in), and at most n + 1 of them for n events: one
--     starting at or before lo, one starting in each of the n - 1 gaps (two visits in a gap of
--     at most the timeout would need a gap longer than it between them) and one after hi.
--     They are the last n + 1 starting at or before hi + timeout, of those the ones ending at
--     or after lo - timeout: one backward index scan per cluster, hence LIMIT n + 1.
--   * So the rows read are those of the touched visits' [started_at, ended_at] and of the
--     clusters' [lo, hi], these ranges merged where they are at most the timeout apart, so that
--     no row is read twice and fewer ranges are read. No untouched visit lies inside the merged
--     ranges: inside a cluster it would be within the timeout of a new event; in a gap of at most
--     the timeout next to a new event, likewise; between two touched visits, that gap is longer
--     than the timeout. One window over all the batch's events of a user, [min, max], would not
--     do: an untouched visit can lie between two clusters hours apart.
-- An explicit session_id is one visit: it is deleted and recomputed from all its raw rows, which
-- lie within [least(its start, the new ts), greatest(its end, the new ts)].
--
-- Concurrency: two transactions may refresh the same user at once (HTTP micro-batches commit
-- concurrently). Each takes a transaction-level advisory lock per (project, user) before reading
-- anything, so the second one reads the raw rows and visits only after the first committed.
-- This needs READ COMMITTED, the batches' level: every statement below takes a new snapshot after
-- the locks (under REPEATABLE READ the snapshot would predate them). Without the locks each would
-- compute from the raw rows without the other's events, and one set of visits would be lost or
-- doubled. Before them, it takes the project lock (tally.session_project_lock) SHARED for each
-- project of the batch: refreshes never wait on each other there, a rebuild of the project
-- (EXCLUSIVE) waits for them and they for it; a rebuild of another project stops nothing.
-- Lock order, so that no two transactions wait on each other in a cycle:
--   * The advisory locks come after all the row locks of the batch (tally.write_events calls this
--     last, and a batch is one call): project locks in ascending project order (COLLATE "C"),
--     then the settings row (tally.session_settings, inserted once per project, in the same
--     order), then the per-user locks in ascending key order. Once a refresher holds them it waits
--     only for such locks and for the table locks of tally.session_settings and tally.sessions.
--   * tally.rebuild_sessions runs after its caller bumped the project's data version (a row a
--     batch of the project locks before its refresh), then takes the project lock, then the
--     settings row and the visits: a batch either waits for it at the version row holding no
--     advisory lock, or holds the version row and makes the rebuild wait there.
--   * `tally projects move` takes table locks only (project-move.ts), never an advisory lock; it
--     cannot hold those of tally.events while a refresher runs (the refresher's batch inserted raw
--     rows first), and a rebuild holds the data_versions lock the move waits for before anything
--     it needs of the rebuild.
-- A hash collision between two users (or two projects) only makes them wait for each other.
-- The session timeout each project's visits were built with (ms). Visits cut with one timeout and
-- refreshed with another are wrong without any error (the touched-visit bound above assumes one
-- timeout), so refresh_sessions refuses a different one: SQLSTATE TL001, which the writer turns
-- into TALLY_CONFIG_INVALID (write-events.ts). Written by the first refresh of a project and by
-- every rebuild (`tally sessions rebuild`, migration 013).
CREATE TABLE tally.session_settings (
  project    text PRIMARY KEY,
  timeout_ms float8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Takes the project's visits lock: SHARED by refresh_sessions, EXCLUSIVE by rebuild_sessions.
-- The two-key form, so that it never meets a per-user lock (one bigint key): PostgreSQL keeps the
-- two key spaces apart. 741120 only names this use.
CREATE FUNCTION tally.session_project_lock(p_project text, p_exclusive boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_exclusive THEN
    PERFORM pg_advisory_xact_lock(741120, hashtext(p_project));
  ELSE
    PERFORM pg_advisory_xact_lock_shared(741120, hashtext(p_project));
  END IF;
END
$$;

CREATE FUNCTION tally.refresh_sessions(
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

  WITH fresh AS (
    -- The same conversion as tally.write_events, so ts equals the stored value exactly.
    SELECT DISTINCT x.p, x.u, coalesce(nullif(x.s, ''), '') AS k, to_timestamp(x.ts / 1000.0) AS ts
      FROM unnest(p_project, p_user_id, p_ts, p_session_id) AS x(p, u, ts, s)
  ),
  -- A user's new gap events cut the way visits are: a cluster's events are at most the timeout
  -- apart, and the visits it touches are exactly those meeting [lo - timeout, hi + timeout].
  clusters AS (
    SELECT c.p, c.u, min(c.ts) AS lo, max(c.ts) AS hi, count(*) AS n
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
  touched AS (
    SELECT v.project, v.user_id, v.session_key, v.started_at
      FROM clusters c
      CROSS JOIN LATERAL (
        SELECT s.project, s.user_id, s.session_key, s.started_at, s.ended_at
          FROM tally.sessions s
         WHERE s.project = c.p AND s.user_id = c.u AND s.session_key = ''
           AND s.started_at <= c.hi + v_timeout
         ORDER BY s.started_at DESC
         LIMIT c.n + 1
      ) AS v
     WHERE v.ended_at >= c.lo - v_timeout
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
    SELECT g.project AS p, g.user_id AS u, g.session_key AS k, g.started_at AS lo, g.ended_at AS hi FROM gone g
    UNION ALL
    SELECT c.p, c.u, '', c.lo, c.hi FROM clusters c
    UNION ALL
    SELECT f.p, f.u, f.k, f.ts, f.ts FROM fresh f WHERE f.k <> ''
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
    SELECT i.p, i.u, i.k, min(i.lo) AS lo, max(i.hi) AS hi FROM islands i GROUP BY i.p, i.u, i.k, i.island
  )
  SELECT array_agg(r.p), array_agg(r.u), array_agg(r.k), array_agg(r.lo), array_agg(r.hi)
    INTO v_p, v_u, v_k, v_lo, v_hi
    FROM ranges r;

  -- A second statement: it must see the deletions done (a visit may come back with the same key).
  INSERT INTO tally.sessions
  SELECT * FROM tally.cut_visits(NULL, v_p, v_u, v_k, v_lo, v_hi, v_timeout);
END
$$;

-- Deletes and recomputes the visits of p_project from its raw rows with the timeout p_timeout_ms,
-- which it stores as the project's (tally.session_settings); returns the visits stored. Visits
-- that ended before the project's oldest raw row stay: their raw rows were dropped by the
-- retention (see the top of this file). Holds the project lock EXCLUSIVE until the caller's
-- transaction ends, so no batch refreshes a visit of this project in between: a batch that stored
-- raw rows of it meanwhile refreshes its users after this commits, from a snapshot that sees the
-- rebuilt visits and its own rows. Batches of other projects go on. The caller bumps the project's
-- data version first (the lock order above) and lifts statement_timeout: one statement reads the
-- whole project.
CREATE FUNCTION tally.rebuild_sessions(p_project text, p_timeout_ms float8)
RETURNS int8 LANGUAGE plpgsql AS $$
DECLARE
  v_timeout interval := p_timeout_ms * interval '1 millisecond';
  v_from timestamptz;
  v_count int8;
BEGIN
  PERFORM tally.session_project_lock(p_project, true);
  INSERT INTO tally.session_settings AS s (project, timeout_ms) VALUES (p_project, p_timeout_ms)
  ON CONFLICT (project) DO UPDATE SET timeout_ms = excluded.timeout_ms, updated_at = now();
  SELECT min(e.ts) INTO v_from FROM tally.events e WHERE e.project = p_project;
  IF v_from IS NULL THEN
    RETURN 0;
  END IF;
  DELETE FROM tally.sessions s WHERE s.project = p_project AND s.ended_at >= v_from;
  INSERT INTO tally.sessions
  SELECT * FROM tally.cut_visits(p_project, NULL, NULL, NULL, NULL, NULL, v_timeout);
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END
$$;
