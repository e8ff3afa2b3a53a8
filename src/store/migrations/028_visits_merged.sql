-- tally.refresh_sessions merges a batch's new events into the visits they touch, from what the
-- visits already hold, and reads no raw row (migration 015 did so for one case, a user's events
-- after its visit; every other user was recomputed from its raw rows). The rule, the locks and
-- their order are those of migration 011 (read its proof); the append case of 015 becomes the
-- general one.
--
-- Why: the raw rows the refresh read were its largest cost, and grew with the days of raw storage
-- (docs/benchmarks.md, "Durable single events" and "The refresh and the days of raw storage"):
-- single events come at any time of the last hour, so most visits of a batch were recomputed from
-- every raw row they hold, and each read of tally.events planned every daily partition.
--
-- Why a merge is exact. Adding events to a user's events only merges visits: a gap longer than the
-- timeout between two stored events either stays or gets a new event inside it; it never appears.
-- So each new visit is one island of the touched visits (migration 011: those meeting [lo -
-- timeout, hi + timeout] of a cluster of new events; for an explicit session_id, its one visit)
-- and the new events, chained where they are at most the timeout apart; no untouched visit lies
-- inside an island (it would be within the timeout of a new event or of a touched visit). Every
-- column of a visit is a merge of its parts': the earliest start, the latest end, the sums of
-- events and page views, is_bot OR-ed, and the values of the first event (its dimensions), of the
-- first page view (entry page) and of the last (exit page) in the order (ts, event_id COLLATE "C").
-- That order needs the event_id of each: new columns keep them (first_event_id, and entry_at,
-- entry_event_id, exit_at, exit_event_id for the page views), computed by tally.cut_visits as
-- well, so a rebuild gives the same rows.
--
-- Raw retention: a visit is merged only when every raw row it was computed from is still stored,
-- that is when it starts at or after the raw cutoff the writer passes (p_raw_cutoff: no event
-- at or after it was left unstored, and retention drops only days wholly before it,
-- partitions.ts; a user deletion removes the user's visits with the raw rows). A touched visit
-- that starts before it is recomputed, with every part of its island, from the raw rows still
-- stored, as migration 011 says (if they are all still there, that gives the merge's result); so
-- is a visit stored before this migration whose columns could not be filled (below), whose
-- first_event_id is NULL. No raw row is read to decide it: migration 015's check that a visit's
-- first raw row was still stored probed tally.events for each touched visit, and as one EXISTS
-- over 5,000 visits PostgreSQL read the whole day's partition into a hash instead.
--
-- A merged visit that starts where one of its stored parts started is updated in place (a HOT
-- update, migration 026: none of the columns changed is in an index); the others are deleted and
-- the merged one inserted.
--
-- The event's columns come with the call: tally.write_events passes its arrays with a mask of the
-- events the refresh takes (fresh, within the raw retention), rather than aggregating them again.
--
-- TRICKY: CREATE OR REPLACE FUNCTION resets a function's SET clauses; migration 019's are repeated
-- for the new signature at the end (test/store/sessions-plans.integration.test.ts checks them).

ALTER TABLE tally.sessions
  ADD COLUMN first_event_id text,
  ADD COLUMN entry_at timestamptz,
  ADD COLUMN entry_event_id text,
  ADD COLUMN exit_at timestamptz,
  ADD COLUMN exit_event_id text;

-- Migration 011's function with the new columns at the end (the table's column order).
CREATE OR REPLACE FUNCTION tally.cut_visits(
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
         bool_or(c.is_bot),
         max(c.event_id) FILTER (WHERE c.first),
         min(c.ts) FILTER (WHERE c.type = 'page_view'),
         (array_agg(c.event_id ORDER BY c.ts, c.event_id COLLATE "C") FILTER (WHERE c.type = 'page_view'))[1],
         max(c.ts) FILTER (WHERE c.type = 'page_view'),
         (array_agg(c.event_id ORDER BY c.ts DESC, c.event_id COLLATE "C" DESC) FILTER (WHERE c.type = 'page_view'))[1]
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

-- The stored visits get the new columns where their raw rows cut into the same visit (same start,
-- end and number of events: every row they were computed from is still stored). The others (raw
-- retention dropped their start) keep NULLs, and are recomputed from the rows still stored if a
-- new event ever touches them, as before. One scan of each project's raw rows, like a rebuild;
-- no number changes, so no cached answer is stale.
SET LOCAL statement_timeout = 0;
UPDATE tally.sessions s
   SET first_event_id = c.first_event_id, entry_at = c.entry_at, entry_event_id = c.entry_event_id,
       exit_at = c.exit_at, exit_event_id = c.exit_event_id
  FROM tally.session_settings t
 CROSS JOIN LATERAL tally.cut_visits(t.project, NULL, NULL, NULL, NULL, NULL, t.timeout_ms * interval '1 millisecond') AS c
 WHERE s.project = c.project AND s.user_id = c.user_id AND s.session_key = c.session_key
   AND s.started_at = c.started_at AND s.ended_at = c.ended_at AND s.events = c.events;

DROP FUNCTION tally.refresh_sessions(text[], text[], float8[], text[], float8);

-- Merges the fresh events just inserted into tally.events into the visits (tally.sessions):
-- parallel arrays, one element per event (ts in epoch ms as given to tally.write_events), of which
-- it takes those whose p_take is not false (NULL: all); p_timeout_ms is the session timeout, and
-- p_raw_cutoff (epoch ms) the raw retention's cutoff (NULL: none). Called in the batch's
-- transaction, after the raw rows were inserted.
CREATE FUNCTION tally.refresh_sessions(
  p_take bool[], p_project text[], p_user_id text[], p_ts float8[], p_session_id text[],
  p_event_id text[], p_type text[], p_path text[], p_is_bot bool[],
  p_hostname text[], p_referrer_host text[], p_channel text[], p_utm_source text[], p_utm_medium text[],
  p_utm_campaign text[], p_utm_term text[], p_utm_content text[], p_browser text[], p_os text[],
  p_device text[], p_country text[], p_timeout_ms float8, p_raw_cutoff float8
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_timeout interval := p_timeout_ms * interval '1 millisecond';
  v_projects text[];
  v_project text;
  v_stored float8;
  v_lock int8;
  v_touched tally.sessions[];
  v_cutoff timestamptz := coalesce(to_timestamp(p_raw_cutoff / 1000.0), '-infinity');
  v_p text[];
  v_u text[];
  v_k text[];
  v_lo timestamptz[];
  v_hi timestamptz[];
BEGIN
  v_projects := ARRAY(SELECT DISTINCT x.p COLLATE "C" FROM unnest(p_project, p_take) AS x(p, t)
                       WHERE x.t IS NOT FALSE AND x.p IS NOT NULL ORDER BY 1);
  IF cardinality(v_projects) = 0 THEN
    RETURN;
  END IF;
  FOREACH v_project IN ARRAY v_projects LOOP
    PERFORM tally.session_project_lock(v_project, false);
  END LOOP;
  -- A project's first visits record the timeout they are cut with; a project has no visits
  -- before (a rebuild writes the row too). The same order as the project locks.
  INSERT INTO tally.session_settings (project, timeout_ms)
  SELECT x.p, p_timeout_ms
    FROM unnest(v_projects) WITH ORDINALITY AS x(p, i)
   WHERE NOT EXISTS (SELECT 1 FROM tally.session_settings s WHERE s.project = x.p)
   ORDER BY x.i
  ON CONFLICT (project) DO NOTHING;
  SELECT s.project, s.timeout_ms INTO v_project, v_stored
    FROM tally.session_settings s
   WHERE s.project = ANY (v_projects) AND s.timeout_ms <> p_timeout_ms
   ORDER BY s.project COLLATE "C"
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'the visits of project % were built with a session timeout of % min, and this process uses % min: run `tally sessions rebuild` with the new TALLY_SESSION_TIMEOUT_MIN, or set it back to % (and restart)',
      v_project, v_stored / 60000, p_timeout_ms / 60000, v_stored / 60000
      USING ERRCODE = 'TL001';
  END IF;
  FOR v_lock IN
    SELECT DISTINCT hashtextextended(x.p || chr(31) || x.u, 0)
      FROM unnest(p_project, p_user_id, p_take) AS x(p, u, t)
     WHERE x.t IS NOT FALSE
     ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock(v_lock);
  END LOOP;

  -- The touched visits, whole rows.
  WITH fresh AS (
    -- The same conversion as tally.write_events, so ts equals the stored value exactly.
    SELECT DISTINCT x.p, x.u, coalesce(nullif(x.s, ''), '') AS k, to_timestamp(x.ts / 1000.0) AS ts
      FROM unnest(p_project, p_user_id, p_ts, p_session_id, p_take) AS x(p, u, ts, s, t)
     WHERE x.t IS NOT FALSE
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
    SELECT v.s
      FROM clusters c
     CROSS JOIN LATERAL (
        SELECT s
          FROM tally.sessions s
         WHERE s.project = c.p AND s.user_id = c.u AND s.session_key = ''
           AND s.started_at <= c.hi + v_timeout
         ORDER BY s.started_at DESC
         LIMIT c.n + 1
      ) AS v
     WHERE (v.s).ended_at >= c.lo - v_timeout
    -- UNION: one visit may meet two clusters.
    UNION
    SELECT s
      FROM (SELECT DISTINCT f.p, f.u, f.k FROM fresh f WHERE f.k <> '') AS f
      JOIN tally.sessions s ON s.project = f.p AND s.user_id = f.u AND s.session_key = f.k
  )
  SELECT array_agg(t.s) INTO v_touched FROM touched t;

  WITH items AS (
    -- The touched visits, each whole when every raw row it was computed from is stored (the header).
    SELECT t.project AS p, t.user_id AS u, t.session_key AS k, t.started_at AS lo, t.ended_at AS hi,
           t.events, t.page_views, t.entry_page, t.exit_page, t.hostname, t.referrer_host, t.channel,
           t.utm_source, t.utm_medium, t.utm_campaign, t.utm_term, t.utm_content, t.browser, t.os,
           t.device, t.country, t.is_bot, t.first_event_id, t.entry_at, t.entry_event_id, t.exit_at,
           t.exit_event_id, true AS old,
           t.first_event_id IS NOT NULL AND t.started_at >= v_cutoff AS whole
      FROM unnest(v_touched) AS t
    UNION ALL
    -- Each new event, a visit of its own.
    SELECT x.p, x.u, coalesce(nullif(x.s, ''), ''), to_timestamp(x.ts / 1000.0), to_timestamp(x.ts / 1000.0),
           1, (x.t = 'page_view')::int4,
           CASE WHEN x.t = 'page_view' THEN x.pa END, CASE WHEN x.t = 'page_view' THEN x.pa END,
           x.h, x.rh, x.ch, x.us, x.um, x.uc, x.ut, x.ux, x.br, x.os, x.dv, x.co, x.b, x.id,
           CASE WHEN x.t = 'page_view' THEN to_timestamp(x.ts / 1000.0) END,
           CASE WHEN x.t = 'page_view' THEN x.id END,
           CASE WHEN x.t = 'page_view' THEN to_timestamp(x.ts / 1000.0) END,
           CASE WHEN x.t = 'page_view' THEN x.id END,
           false, true
      FROM unnest(p_project, p_user_id, p_ts, p_session_id, p_event_id, p_type, p_path, p_is_bot,
                  p_hostname, p_referrer_host, p_channel, p_utm_source, p_utm_medium, p_utm_campaign,
                  p_utm_term, p_utm_content, p_browser, p_os, p_device, p_country, p_take)
           AS x(p, u, ts, s, id, t, pa, b, h, rh, ch, us, um, uc, ut, ux, br, os, dv, co, take)
     WHERE x.take IS NOT FALSE
  ),
  -- Islands: the parts of one new visit, chained where they are at most the timeout apart (an
  -- explicit session_id's parts are all one).
  starts AS (
    SELECT i.*, (i.k = '' AND i.lo > v_timeout + max(i.hi) OVER (
             PARTITION BY i.p, i.u, i.k ORDER BY i.lo, i.hi ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           )) IS NOT FALSE AS starts
      FROM items i
  ),
  islands AS (
    SELECT x.*, sum(x.starts::int4) OVER (
             PARTITION BY x.p, x.u, x.k ORDER BY x.lo, x.hi ROWS UNBOUNDED PRECEDING) AS island
      FROM starts x
  ),
  ranked AS (
    SELECT x.*, row_number() OVER (
             PARTITION BY x.p, x.u, x.k, x.island ORDER BY x.lo, x.first_event_id COLLATE "C") = 1 AS first,
           -- Whether the island is merged, and where it starts: what its stored parts become.
           bool_and(x.whole) OVER island AS island_whole, min(x.lo) OVER island AS island_lo
      FROM islands x
    WINDOW island AS (PARTITION BY x.p, x.u, x.k, x.island)
  ),
  merged AS (
    SELECT r.p, r.u, r.k, r.island, min(r.lo) AS lo, max(r.hi) AS hi,
           sum(r.events)::int4 AS events, sum(r.page_views)::int4 AS page_views,
           (array_agg(r.entry_page ORDER BY r.entry_at, r.entry_event_id COLLATE "C")
              FILTER (WHERE r.page_views > 0))[1] AS entry_page,
           (array_agg(r.exit_page ORDER BY r.exit_at DESC, r.exit_event_id COLLATE "C" DESC)
              FILTER (WHERE r.page_views > 0))[1] AS exit_page,
           -- One first part per island (the window's order): max() just picks its value.
           max(r.hostname) FILTER (WHERE r.first) AS hostname,
           max(r.referrer_host) FILTER (WHERE r.first) AS referrer_host,
           max(r.channel) FILTER (WHERE r.first) AS channel,
           max(r.utm_source) FILTER (WHERE r.first) AS utm_source,
           max(r.utm_medium) FILTER (WHERE r.first) AS utm_medium,
           max(r.utm_campaign) FILTER (WHERE r.first) AS utm_campaign,
           max(r.utm_term) FILTER (WHERE r.first) AS utm_term,
           max(r.utm_content) FILTER (WHERE r.first) AS utm_content,
           max(r.browser) FILTER (WHERE r.first) AS browser,
           max(r.os) FILTER (WHERE r.first) AS os,
           max(r.device) FILTER (WHERE r.first) AS device,
           max(r.country) FILTER (WHERE r.first) AS country,
           bool_or(r.is_bot) AS is_bot,
           max(r.first_event_id) FILTER (WHERE r.first) AS first_event_id,
           min(r.entry_at) AS entry_at,
           (array_agg(r.entry_event_id ORDER BY r.entry_at, r.entry_event_id COLLATE "C")
              FILTER (WHERE r.page_views > 0))[1] AS entry_event_id,
           max(r.exit_at) AS exit_at,
           (array_agg(r.exit_event_id ORDER BY r.exit_at DESC, r.exit_event_id COLLATE "C" DESC)
              FILTER (WHERE r.page_views > 0))[1] AS exit_event_id,
           bool_and(r.whole) AS whole,
           -- A stored part starts where the island does: that row is updated in place.
           coalesce(min(r.lo) FILTER (WHERE r.old) = min(r.lo), false) AS kept
      FROM ranked r
     GROUP BY r.p, r.u, r.k, r.island
  ),
  updated AS (
    UPDATE tally.sessions s
       SET ended_at = m.hi, events = m.events, page_views = m.page_views, entry_page = m.entry_page,
           exit_page = m.exit_page, hostname = m.hostname, referrer_host = m.referrer_host,
           channel = m.channel, utm_source = m.utm_source, utm_medium = m.utm_medium,
           utm_campaign = m.utm_campaign, utm_term = m.utm_term, utm_content = m.utm_content,
           browser = m.browser, os = m.os, device = m.device, country = m.country, is_bot = m.is_bot,
           first_event_id = m.first_event_id, entry_at = m.entry_at, entry_event_id = m.entry_event_id,
           exit_at = m.exit_at, exit_event_id = m.exit_event_id
      FROM merged m
     WHERE m.whole AND m.kept
       AND s.project = m.p AND s.user_id = m.u AND s.session_key = m.k AND s.started_at = m.lo
  ),
  -- Every other stored part goes: merged into another row, or recomputed below.
  -- (A join of the stored part to its island's row would be a nested loop over two CTEs: the
  -- windows above carry what it needs.)
  gone AS (
    DELETE FROM tally.sessions s
     USING ranked r
     WHERE r.old AND NOT (r.island_whole AND r.lo = r.island_lo)
       AND s.project = r.p AND s.user_id = r.u AND s.session_key = r.k AND s.started_at = r.lo
  ),
  -- No stored row starts where these islands do (an island's first part is a new event), and no
  -- other row either: a visit starting at a new event's instant would have been touched.
  added AS (
    INSERT INTO tally.sessions
      (project, user_id, session_key, started_at, ended_at, events, page_views, entry_page, exit_page,
       hostname, referrer_host, channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       browser, os, device, country, is_bot, first_event_id, entry_at, entry_event_id, exit_at,
       exit_event_id)
    SELECT m.p, m.u, m.k, m.lo, m.hi, m.events, m.page_views, m.entry_page, m.exit_page,
           m.hostname, m.referrer_host, m.channel, m.utm_source, m.utm_medium, m.utm_campaign,
           m.utm_term, m.utm_content, m.browser, m.os, m.device, m.country, m.is_bot, m.first_event_id,
           m.entry_at, m.entry_event_id, m.exit_at, m.exit_event_id
      FROM merged m
     WHERE m.whole AND NOT m.kept
  )
  -- Islands with a part whose raw rows are not all stored: recomputed from the raw rows of their
  -- range (disjoint ranges: islands of one user and key do not overlap).
  SELECT array_agg(m.p), array_agg(m.u), array_agg(m.k), array_agg(m.lo), array_agg(m.hi)
    INTO v_p, v_u, v_k, v_lo, v_hi
    FROM merged m
   WHERE NOT m.whole;

  -- A second statement: it must see the deletions done (a visit may come back with the same key).
  IF v_p IS NOT NULL THEN
    INSERT INTO tally.sessions
    SELECT * FROM tally.cut_visits(NULL, v_p, v_u, v_k, v_lo, v_hi, v_timeout);
  END IF;
END
$$;

-- Migration 019's planner settings, for the new signature.
ALTER FUNCTION tally.refresh_sessions(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  SET enable_hashjoin = off;
ALTER FUNCTION tally.refresh_sessions(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  SET enable_mergejoin = off;
ALTER FUNCTION tally.refresh_sessions(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  SET plan_cache_mode = force_custom_plan;

-- Migration 025's function; only the call of the refresh changes (its new arguments).
CREATE OR REPLACE FUNCTION tally.write_events(
  p_levels int2[], p_level_ms float8[],
  p_project text[], p_event_id text[], p_type text[], p_ts float8[], p_page_url text[], p_is_bot bool[],
  p_projects text[], p_user_hash bytea[], p_user_hash_of int4[],
  p_raw_cutoff float8, p_user_id text[], p_received_at float8[], p_referrer text[],
  p_session_id text[], p_service text[], p_properties text[],
  p_user_agent text[], p_country text[], p_hostname text[], p_path text[], p_referrer_host text[],
  p_utm_source text[], p_utm_medium text[], p_utm_campaign text[], p_utm_term text[], p_utm_content text[],
  p_channel text[], p_browser text[], p_os text[], p_device text[],
  p_timeout_ms float8,
  p_users_project text[], p_users_level int2[], p_users_bucket float8[],
  p_users_num int4[], p_users_from int4[], p_users_to int4[], p_users_event int4[],
  OUT fresh bool[], OUT projects text[], OUT versions int8[], OUT dropped bool[]
) LANGUAGE plpgsql AS $$
DECLARE
  keep bool[];
  visited bool[];
  batch_projects text[] := ARRAY(SELECT DISTINCT x.p COLLATE "C" FROM unnest(p_projects) AS x(p) ORDER BY 1);
  v_project text;
BEGIN
  FOREACH v_project IN ARRAY batch_projects LOOP
    PERFORM pg_advisory_xact_lock_shared(741121, hashtext(v_project));
  END LOOP;

  dropped := array_fill(false, ARRAY[cardinality(p_project)]);
  IF EXISTS (SELECT 1 FROM tally.user_tombstones t WHERE t.project = ANY (batch_projects)) THEN
    IF EXISTS (SELECT 1 FROM tally.user_tombstones t
                WHERE t.project = ANY (batch_projects) AND t.user_hash = ANY (p_user_hash)) THEN
      SELECT array_agg(t.project IS NOT NULL ORDER BY x.i) INTO dropped
        FROM unnest(p_project, p_user_hash_of) WITH ORDINALITY AS x(p, h, i)
        LEFT JOIN tally.user_tombstones t ON t.project = x.p AND t.user_hash = p_user_hash[x.h];
    END IF;
  END IF;

  IF array_position(dropped, true) IS NOT NULL THEN
    PERFORM 1
       FROM tally.user_tombstones t
      WHERE (t.project, t.user_hash) IN
            (SELECT x.p, p_user_hash[x.h] FROM unnest(p_project, p_user_hash_of, dropped) AS x(p, h, d) WHERE x.d)
      ORDER BY t.project COLLATE "C", t.user_hash
        FOR UPDATE;
    UPDATE tally.user_tombstones t
       SET dropped_events = t.dropped_events + c.n, last_dropped_at = now()
      FROM (SELECT x.p, p_user_hash[x.h] AS h, count(*) AS n
              FROM unnest(p_project, p_user_hash_of, dropped) AS x(p, h, d)
             WHERE x.d
             GROUP BY 1, 2) AS c
     WHERE t.project = c.p AND t.user_hash = c.h;
  END IF;

  -- Nearly every batch has no key stored already: a plain insert of all its keys, undone as a
  -- whole (the block's savepoint) at the first key that is, and then the general way below.
  IF array_position(dropped, true) IS NULL THEN
    BEGIN
      INSERT INTO tally.event_ids (project, event_id)
      SELECT x.p, x.id FROM unnest(p_project, p_event_id) AS x(p, id);
      fresh := array_fill(true, ARRAY[cardinality(p_project)]);
    EXCEPTION WHEN unique_violation THEN
      fresh := NULL;
    END;
  END IF;

  IF fresh IS NULL THEN
    WITH k AS (
      INSERT INTO tally.event_ids (project, event_id)
      SELECT x.p, x.id
        FROM unnest(p_project, p_event_id) WITH ORDINALITY AS x(p, id, i)
       WHERE NOT dropped[x.i::int4]
      ON CONFLICT DO NOTHING
      RETURNING project, event_id
    )
    SELECT array_agg(k.event_id IS NOT NULL ORDER BY x.i) INTO fresh
      FROM unnest(p_project, p_event_id) WITH ORDINALITY AS x(p, id, i)
      LEFT JOIN k ON k.project = x.p AND k.event_id = x.id;
  END IF;
  projects := '{}';
  versions := '{}';
  IF array_position(fresh, true) IS NULL THEN
    RETURN;
  END IF;

  IF p_raw_cutoff IS NOT NULL THEN
    INSERT INTO tally.events
      (project, event_id, type, user_id, ts, received_at, page_url, referrer, session_id, service, properties,
       user_agent, country, hostname, path, referrer_host, utm_source, utm_medium, utm_campaign, utm_term,
       utm_content, channel, browser, os, device, is_bot)
    SELECT x.p, x.id, x.t, x.u, to_timestamp(x.ts / 1000.0), to_timestamp(x.r / 1000.0), x.pu, x.rf, x.s, x.sv,
           x.pr::jsonb, x.ua, x.co, x.h, x.pa, x.rh, x.us, x.um, x.uc, x.ut, x.ux, x.ch, x.br, x.os, x.dv, x.b
      FROM unnest(p_project, p_event_id, p_type, p_user_id, p_ts, p_received_at,
                  p_page_url, p_referrer, p_session_id, p_service, p_properties,
                  p_user_agent, p_country, p_hostname, p_path, p_referrer_host, p_utm_source, p_utm_medium,
                  p_utm_campaign, p_utm_term, p_utm_content, p_channel, p_browser, p_os, p_device, p_is_bot)
             WITH ORDINALITY AS x(p, id, t, u, ts, r, pu, rf, s, sv, pr,
                                  ua, co, h, pa, rh, us, um, uc, ut, ux, ch, br, os, dv, b, i)
     WHERE fresh[x.i::int4] AND x.ts >= p_raw_cutoff;
  END IF;

  -- The visits before the rows every batch shares (the header's lock order): after the keys, so
  -- its per-user locks come after every key lock of the batch, as in migration 011.
  IF p_raw_cutoff IS NOT NULL THEN
    SELECT array_agg(fresh[x.i::int4] AND x.ts >= p_raw_cutoff ORDER BY x.i) INTO visited
      FROM unnest(p_ts) WITH ORDINALITY AS x(ts, i);
    IF array_position(visited, true) IS NOT NULL THEN
      PERFORM tally.refresh_sessions(
        visited, p_project, p_user_id, p_ts, p_session_id, p_event_id, p_type, p_path, p_is_bot,
        p_hostname, p_referrer_host, p_channel, p_utm_source, p_utm_medium, p_utm_campaign, p_utm_term,
        p_utm_content, p_browser, p_os, p_device, p_country, p_timeout_ms, p_raw_cutoff);
    END IF;
  END IF;

  -- Every event fresh (nearly every batch): every row is kept, no search.
  IF array_position(fresh, false) IS NULL THEN
    keep := array_fill(true, ARRAY[cardinality(p_users_from)]);
  ELSE
    SELECT coalesce(array_agg(EXISTS (SELECT 1 FROM unnest(p_users_event[x.f:x.t]) AS e(i) WHERE fresh[e.i])
                              ORDER BY x.i), '{}')
      INTO keep
      FROM unnest(p_users_from, p_users_to) WITH ORDINALITY AS x(f, t, i);
  END IF;

  WITH v AS (
    INSERT INTO tally.data_versions AS v (project, version)
    SELECT d.p, 1
      FROM (SELECT DISTINCT x.p FROM unnest(p_project) WITH ORDINALITY AS x(p, i) WHERE fresh[x.i::int4]) AS d
     ORDER BY d.p COLLATE "C"
    ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
    RETURNING project, version
  )
  SELECT array_agg(v.project ORDER BY v.project), array_agg(v.version ORDER BY v.project)
    INTO projects, versions
    FROM v;
  PERFORM pg_notify('tally_data_versions', x.v || ' ' || x.p) FROM unnest(projects, versions) AS x(p, v);

  INSERT INTO tally.rollup_events AS r (project, level, bucket, type, count)
  SELECT x.p, l.level, to_timestamp(floor(x.ts / l.ms) * l.ms / 1000.0), x.t, count(*)
    FROM unnest(p_project, p_type, p_ts, p_is_bot) WITH ORDINALITY AS x(p, t, ts, b, i)
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   WHERE fresh[x.i::int4] AND NOT x.b
   GROUP BY x.p, l.level, 3, x.t
   ORDER BY x.p COLLATE "C", l.level, 3, x.t COLLATE "C"
  ON CONFLICT (project, level, bucket, type) DO UPDATE SET count = r.count + excluded.count, updated_at = now();

  -- New pages get their numbers here, each page once, in page_url order like every row of the batch.
  -- Only the pages with no number yet: ON CONFLICT alone would draw an id from the sequence for
  -- every page of every batch, and run int4 out in days at a high rate. (Two batches racing to
  -- number one new page still draw two: rare.)
  INSERT INTO tally.page_urls (page_url)
  SELECT d.u FROM (
    SELECT DISTINCT x.u
      FROM unnest(p_page_url, p_is_bot) WITH ORDINALITY AS x(u, b, i)
     WHERE fresh[x.i::int4] AND NOT x.b AND x.u IS NOT NULL
  ) AS d
   WHERE NOT EXISTS (SELECT 1 FROM tally.page_urls p WHERE p.page_url = d.u)
   ORDER BY d.u COLLATE "C"
  ON CONFLICT (page_url) DO NOTHING;

  INSERT INTO tally.rollup_pages AS r (project, level, bucket, type, page_id, count)
  SELECT x.p, l.level, to_timestamp(floor(x.ts / l.ms) * l.ms / 1000.0), x.t, d.id, count(*)
    FROM unnest(p_project, p_type, p_ts, p_page_url, p_is_bot) WITH ORDINALITY AS x(p, t, ts, u, b, i)
    -- Each distinct page looked up once, not once per event.
    JOIN (SELECT p.id, p.page_url FROM tally.page_urls p
           WHERE p.page_url = ANY (ARRAY(SELECT DISTINCT u FROM unnest(p_page_url) AS u WHERE u IS NOT NULL))) AS d
      ON d.page_url = x.u
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   WHERE fresh[x.i::int4] AND NOT x.b
   GROUP BY x.p, l.level, 3, x.t, d.id
   ORDER BY x.p COLLATE "C", l.level, 3, x.t COLLATE "C", d.id
  ON CONFLICT (project, level, bucket, type, page_id) DO UPDATE SET count = r.count + excluded.count;

  INSERT INTO tally.rollup_minute_users AS r (project, bucket, users)
  SELECT x.p, to_timestamp(x.b / 1000.0), array_agg(DISTINCT x.n ORDER BY x.n)
    FROM unnest(p_users_project, p_users_level, p_users_bucket, p_users_num) WITH ORDINALITY AS x(p, l, b, n, i)
   WHERE keep[x.i::int4] AND x.l = 0
   GROUP BY x.p, 2
   ORDER BY x.p COLLATE "C", 2
  ON CONFLICT (project, bucket) DO UPDATE SET users = tally.merge_users(r.users, excluded.users);

  -- 8192 users per chunk: USERS_PER_CHUNK of src/store/user-numbers.ts, migration 005.
  INSERT INTO tally.rollup_user_bits AS r (project, level, bucket, chunk, users)
  SELECT x.p, x.l, to_timestamp(x.b / 1000.0), x.n / 8192, bit_or(set_bit(B'0'::bit(8192), x.n % 8192, 1))
    FROM unnest(p_users_project, p_users_level, p_users_bucket, p_users_num) WITH ORDINALITY AS x(p, l, b, n, i)
   WHERE keep[x.i::int4] AND x.l > 0
   GROUP BY x.p, x.l, 3, 4
   ORDER BY x.p COLLATE "C", x.l, 3, 4
  ON CONFLICT (project, level, bucket, chunk) DO UPDATE SET users = r.users | excluded.users;

END
$$;
