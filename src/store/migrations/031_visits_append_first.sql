-- tally.merge_visits first extends, in place, the visit that a user's new events of the batch
-- follow (or stores those events as one new visit), and merges only the other events the way
-- migration 028 does.
--
-- Why: live traffic is mostly that case (a user's next events come after the user's last one),
-- and the processor's batches are nearly all of it (scenario 3: each batch of 5,000 holds ~2,500
-- users twice each, after their visits). There migration 028's merge treated every event as a
-- visit of its own: it read each touched visit whole, sorted the parts, ran its windows and
-- ordered aggregates and wrote the merged rows back: 145 of the 172 ms a batch of 5,000 (every user
-- once) spent in the merge, of 269 ms in tally.write_events (PGSS=1 bench/write-profile.ts; figures
-- in docs/benchmarks.md, "Visits extended in place"). Extending a visit needs one index probe and
-- one update of its row.
--
-- Why it is exact (the rule of migration 011, the merge of 028). Take a user's new events E of the
-- batch without a session_id (the taken ones: fresh, within the raw retention), in the order (ts,
-- event_id COLLATE "C"), each at most the timeout after the one before, so that they alone make
-- one visit; and the user's latest visit L without one (the greatest started_at: a user's visits
-- of one key are disjoint and more than the timeout apart, so it also ends last).
-- - No visit, or E's first event more than the timeout after L's end: no visit meets E's range
--   widened by the timeout (every visit ends at or before L's end), so 028 touches none, and E's
--   parts chain into one island: one new visit, from E's first event (its dimensions), first and
--   last page views, sums and is_bot. That is the insert below.
-- - E's first event after L's end (strictly: a tie on time would be ordered by event_id) and at
--   most the timeout after it: L is the one visit touched (an earlier one ends more than the
--   timeout before L starts), and the island is L and E. When L is whole (every raw row it was
--   computed from is stored: first_event_id set, started at or after the raw cutoff), 028 merges
--   them into L's row: the same start, so the same first event and dimensions; E's last time as
--   the end; the sums plus E's; E's last page view as the exit page if it has one (it is the
--   latest), and E's first as the entry page if L had none; is_bot OR-ed. That is the update
--   below. A visit that is not whole goes the general way, which recomputes it from raw rows.
-- Every other event (a user's events with a gap over the timeout among them, or one before or
-- inside the latest visit, any event with a session_id) goes the general way, as before; a user's
-- keyless and keyed visits are separate, so neither way sees the other's rows. The user's
-- advisory lock is taken before either way, as before.
--
-- Also: the users' advisory locks are taken by one statement in the same order, instead of one
-- PERFORM a user, which force_custom_plan (the wrapper's mode for large batches) planned again for
-- every user.
--
-- TRICKY: CREATE OR REPLACE FUNCTION resets a function's SET clauses; migration 019's join
-- settings are repeated at the end (test/store/sessions-plans.integration.test.ts checks them).
-- Apart from these two changes, the body is migration 028's.

CREATE OR REPLACE FUNCTION tally.merge_visits(
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
  -- The users' locks in the order of their keys, as before, but in one statement: one PERFORM a
  -- user was planned again for each user under force_custom_plan (10 ms a batch of 5,000). The
  -- sorted subquery cannot be flattened (DISTINCT), and its rows reach the lock in its order.
  PERFORM pg_advisory_xact_lock(l.k)
     FROM (SELECT DISTINCT hashtextextended(x.p || chr(31) || x.u, 0) AS k
             FROM unnest(p_project, p_user_id, p_take) AS x(p, u, t)
            WHERE x.t IS NOT FALSE
            ORDER BY 1) AS l;

  -- A user's new events without a session_id that all follow the user's latest visit, each at most
  -- the timeout after the one before (the header): that visit extended in place, or one visit of
  -- those events; then taken no further. One sort: every window below shares its order.
  WITH x AS (
    SELECT x.i, x.p, x.u, coalesce(x.s, '') AS k, x.take IS NOT FALSE AS take, to_timestamp(x.ts / 1000.0) AS ts,
           x.id, x.t = 'page_view' AS pv, x.pa, x.b, x.h, x.rh, x.ch, x.us, x.um, x.uc, x.ut, x.ux, x.br, x.os,
           x.dv, x.co
      FROM unnest(p_project, p_user_id, p_ts, p_session_id, p_event_id, p_type, p_path, p_is_bot,
                  p_hostname, p_referrer_host, p_channel, p_utm_source, p_utm_medium, p_utm_campaign,
                  p_utm_term, p_utm_content, p_browser, p_os, p_device, p_country, p_take)
           WITH ORDINALITY AS x(p, u, ts, s, id, t, pa, b, h, rh, ch, us, um, uc, ut, ux, br, os, dv, co, take, i)
  ),
  -- Each user's events in the order (ts, event_id): the first (rn 1), the gaps, the page views so far.
  o AS (
    SELECT x.*, row_number() OVER s AS rn, x.ts - lag(x.ts) OVER s AS gap,
           count(*) FILTER (WHERE x.pv) OVER s AS pv_run
      FROM x
    WINDOW s AS (PARTITION BY x.take, x.k, x.p, x.u ORDER BY x.ts, x.id COLLATE "C" ROWS UNBOUNDED PRECEDING)
  ),
  -- The user's events as one part: on every row, so that its first row carries them. One row
  -- matches each FILTER below: max() just picks its value.
  g AS (
    SELECT o.*, count(*) OVER u AS n, count(*) FILTER (WHERE o.pv) OVER u AS pv_n,
           max(o.gap) OVER u AS max_gap, max(o.ts) OVER u AS hi, bool_or(o.b) OVER u AS bot,
           max(o.pa) FILTER (WHERE o.pv AND o.pv_run = 1) OVER u AS entry_page,
           max(o.ts) FILTER (WHERE o.pv AND o.pv_run = 1) OVER u AS entry_at,
           max(o.id) FILTER (WHERE o.pv AND o.pv_run = 1) OVER u AS entry_id
      FROM o
    WINDOW u AS (PARTITION BY o.take, o.k, o.p, o.u)
  ),
  e AS (
    SELECT g.*,
           max(g.pa) FILTER (WHERE g.pv AND g.pv_run = g.pv_n) OVER u AS exit_page,
           max(g.ts) FILTER (WHERE g.pv AND g.pv_run = g.pv_n) OVER u AS exit_at,
           max(g.id) FILTER (WHERE g.pv AND g.pv_run = g.pv_n) OVER u AS exit_id,
           g.take AND g.k = '' AND g.rn = 1 AND (g.max_gap IS NULL OR g.max_gap <= v_timeout) AS chained
      FROM g
    WINDOW u AS (PARTITION BY g.take, g.k, g.p, g.u)
  ),
  -- On the first row of each chained user: the latest visit, and what becomes of the events.
  d AS (
    SELECT e.*, l.at,
           e.chained AND l.whole AND e.ts > l.ended_at AND e.ts <= l.ended_at + v_timeout AS extends,
           e.chained AND (l.started_at IS NULL OR e.ts > l.ended_at + v_timeout) AS alone
      FROM e
      LEFT JOIN LATERAL (
        SELECT s.ctid AS at, s.started_at, s.ended_at,
               s.first_event_id IS NOT NULL AND s.started_at >= v_cutoff AS whole
          FROM tally.sessions s
         WHERE e.chained AND s.project = e.p AND s.user_id = e.u AND s.session_key = ''
         ORDER BY s.started_at DESC
         LIMIT 1
      ) AS l ON true
  ),
  extended AS (
    UPDATE tally.sessions s
       SET ended_at = d.hi, events = s.events + d.n::int4, page_views = s.page_views + d.pv_n::int4,
           entry_page = CASE WHEN d.pv_n > 0 AND s.page_views = 0 THEN d.entry_page ELSE s.entry_page END,
           entry_at = CASE WHEN d.pv_n > 0 AND s.page_views = 0 THEN d.entry_at ELSE s.entry_at END,
           entry_event_id = CASE WHEN d.pv_n > 0 AND s.page_views = 0 THEN d.entry_id ELSE s.entry_event_id END,
           exit_page = CASE WHEN d.pv_n > 0 THEN d.exit_page ELSE s.exit_page END,
           exit_at = CASE WHEN d.pv_n > 0 THEN d.exit_at ELSE s.exit_at END,
           exit_event_id = CASE WHEN d.pv_n > 0 THEN d.exit_id ELSE s.exit_event_id END,
           is_bot = s.is_bot OR d.bot
      FROM d
     WHERE d.extends AND s.ctid = d.at
  ),
  added AS (
    INSERT INTO tally.sessions
      (project, user_id, session_key, started_at, ended_at, events, page_views, entry_page, exit_page,
       hostname, referrer_host, channel, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       browser, os, device, country, is_bot, first_event_id, entry_at, entry_event_id, exit_at,
       exit_event_id)
    SELECT d.p, d.u, '', d.ts, d.hi, d.n::int4, d.pv_n::int4, d.entry_page, d.exit_page,
           d.h, d.rh, d.ch, d.us, d.um, d.uc, d.ut, d.ux, d.br, d.os, d.dv, d.co, d.bot, d.id,
           d.entry_at, d.entry_id, d.exit_at, d.exit_id
      FROM d
     WHERE d.alone
  ),
  -- The decision of each user's first row for all its rows.
  h AS (
    SELECT d.i, d.take AND NOT coalesce(bool_or(d.extends OR d.alone) OVER (PARTITION BY d.take, d.k, d.p, d.u), false) AS rest
      FROM d
  )
  SELECT array_agg(h.rest ORDER BY h.i) INTO p_take FROM h;
  IF array_position(p_take, true) IS NULL THEN
    RETURN;
  END IF;

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

-- Migration 019's join settings (see the header's TRICKY).
ALTER FUNCTION tally.merge_visits(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  SET enable_hashjoin = off;
ALTER FUNCTION tally.merge_visits(bool[], text[], text[], float8[], text[], text[], text[], text[], bool[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], float8, float8)
  SET enable_mergejoin = off;
