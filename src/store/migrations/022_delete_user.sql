-- Deleting one user (issue 22): tally.delete_user removes everything a project stores of the user
-- and corrects every rollup, so that each number equals what the project would hold had the user's
-- events never been sent. Called by src/store/user-deletion.ts (deleteUser), in a transaction of its
-- own that also records the audit row; the function itself commits nothing.
--
-- What goes, and how each is corrected (design survey §1):
--   * tally.user_numbers: the user's row (it holds the id in plain text). Numbers are never reused
--     (tally.user_number_counters only grows), so the hole harms nothing.
--   * tally.user_tombstones: a row by the keyed hash (also for a user never seen), so the batches
--     drop the user's later events (migration 021).
--   * tally.event_ids: the keys of the user's raw rows; "never sent" means another event with the
--     same id would have counted. Keys of events never stored raw cannot be found; they expire
--     with the raw retention (partitions.ts).
--   * tally.events: every raw row of the user, bots too.
--   * tally.rollup_events, tally.rollup_pages: minus the user's raw non-bot rows, grouped as the
--     writer groups them (tally.write_events, migration 016: each level's bucket is the event time
--     floored to the level's width in ms). Every row to correct must exist and hold at least the
--     user's count, or the function raises (TL003) and nothing is done: the rollups disagree with
--     the raw rows, and a silent partial correction would hide it. Rows the user alone made are
--     deleted, not left at 0: eventTypes and topPages would list them with 0, which "never sent"
--     would not.
--   * tally.rollup_user_bits, tally.rollup_minute_users: the user's bit is cleared in every hour
--     and day where it is set, and its number removed from the minutes of those hours; rows left
--     empty are deleted. Exact whatever the raw window holds: the bits themselves say where the
--     user was active.
--   * tally.sessions: every visit of the user; visits are cut per (project, user), so no other
--     visit depends on them (migration 011). Under the project's visits lock, EXCLUSIVE, as a
--     rebuild takes it (tally.rebuild_sessions), after the data version row.
--   * tally.model_changes: one row (project, the new version, ARRAY[user]) for the one bump, so every
--     query process with a read model retires the user at that version instead of reloading the
--     project (migration 018; design §2). The user's id is also taken out of the older rows of the
--     feed: a snapshot that sees the scrub sees the deletion's row too.
-- Not touched: tally.page_urls (global, no user in it; a page only this user saw is invisible once
-- no rollup_pages row points to it), tally.dead_letters (no user column; not done here).
--
-- THE LIMIT: the counters (events, pages) can only be corrected from raw rows, and rollups are kept
-- for good while raw rows are not: events older than the raw window (TALLY_RAW_RETENTION_DAYS),
-- and every event with TALLY_STORE_RAW=false, are counted with nothing left to subtract. Detected
-- exactly per hour from the bits: an hour (or day) where the user's bit is set but the user has no
-- non-bot raw row holds counts of the user that cannot be removed. Then the function raises TL002,
-- naming those days, unless p_allow_inexact: then it removes everything else (the users' sets are
-- still exact) and returns the days whose counters stay over-counted. (An event of the writer of
-- migration 009 could set a bit without counting, fixed by 014: such an hour is flagged though its
-- counters are right. It errs on the safe side.) Making it exact would need a counter per user per
-- bucket, of the size of the rollups themselves (migration 016's budget): not done.
--
-- Locks: first pg_advisory_xact_lock(741121, hashtext(project)), the EXCLUSIVE side of the lock
-- every batch of the project takes SHARED as its first statement (migration 021): the deletion
-- waits for the project's batches in flight, and later batches wait for its commit and then see
-- the tombstone. Then the tables in the order of `tally projects move` (project-move.ts
-- LOCK_ORDER): user_numbers, user_tombstones, event_ids, events, data_versions, rollup_events,
-- rollup_pages, rollup_minute_users, rollup_user_bits, the visits lock and tally.sessions; the
-- caller writes tally.user_audit last. Within a rollup table the rows are not taken in key order:
-- the project lock keeps the project's batches out meanwhile (without migration 021 a batch could
-- meet it in a deadlock, which PostgreSQL breaks by failing one, retriably: SQLSTATE 40P01).
--
-- p_levels, p_level_ms: every level and its width (src/store/levels.ts LEVELS, as tally.write_events
-- takes them); p_hour, p_day: the levels of the hour and day bit strings (HOUR, DAY).
CREATE FUNCTION tally.delete_user(
  p_project text, p_user_id text, p_user_hash bytea,
  p_levels int2[], p_level_ms float8[], p_hour int2, p_day int2, p_allow_inexact boolean,
  OUT removed_events int8, OUT removed_event_ids int8, OUT removed_visits int8,
  OUT new_version int8, OUT inexact_days timestamptz[]
) LANGUAGE plpgsql AS $$
DECLARE
  v_num int4;
  v_hour_ms float8 := p_level_ms[array_position(p_levels, p_hour)];
  v_day_ms float8 := p_level_ms[array_position(p_levels, p_day)];
  -- The counters to subtract: (level, bucket, type[, page], count), from the raw non-bot rows.
  e_level int2[]; e_bucket timestamptz[]; e_type text[]; e_count int8[];
  g_level int2[]; g_bucket timestamptz[]; g_type text[]; g_page int4[]; g_count int8[];
  -- The hours and days whose bit string has the user's bit set.
  v_bits_level int2[]; v_bits_bucket timestamptz[];
  v_any boolean;
  v_rows int8;
  v_from timestamptz;
  v_to timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(741121, hashtext(p_project));

  SELECT n.num INTO v_num FROM tally.user_numbers n WHERE n.project = p_project AND n.user_id = p_user_id;

  -- Read before anything is deleted: the raw rows are the only record of what the user added.
  -- One pass over them: counts per (level, bucket, type, page_url), summed over the pages for
  -- rollup_events, and per page number for rollup_pages. A page with no number (LEFT JOIN) matches
  -- no rollup_pages row, and the guard below raises.
  WITH x AS (
    SELECT l.level, to_timestamp(floor(date_part('epoch', e.ts) * 1000 / l.ms) * l.ms / 1000.0) AS bucket,
           e.type, e.page_url, count(*) AS k
      FROM tally.events e CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
     WHERE e.project = p_project AND e.user_id = p_user_id AND NOT e.is_bot
     GROUP BY 1, 2, 3, 4
  ), c AS (
    SELECT x.level, x.bucket, x.type, sum(x.k)::int8 AS k FROM x GROUP BY 1, 2, 3
  ), g AS (
    SELECT x.level, x.bucket, x.type, d.id AS page, sum(x.k)::int8 AS k
      FROM x LEFT JOIN tally.page_urls d ON d.page_url = x.page_url
     WHERE x.page_url IS NOT NULL
     GROUP BY 1, 2, 3, 4
  )
  SELECT ca.level, ca.bucket, ca.type, ca.k, ga.level, ga.bucket, ga.type, ga.page, ga.k
    INTO e_level, e_bucket, e_type, e_count, g_level, g_bucket, g_type, g_page, g_count
    FROM (SELECT coalesce(array_agg(c.level), '{}') AS level, coalesce(array_agg(c.bucket), '{}') AS bucket,
                 coalesce(array_agg(c.type), '{}') AS type, coalesce(array_agg(c.k), '{}') AS k FROM c) AS ca,
         (SELECT coalesce(array_agg(g.level), '{}') AS level, coalesce(array_agg(g.bucket), '{}') AS bucket,
                 coalesce(array_agg(g.type), '{}') AS type, coalesce(array_agg(g.page), '{}') AS page,
                 coalesce(array_agg(g.k), '{}') AS k FROM g) AS ga;

  -- Days first (about one row per day and 8192 users), then the hours of those days only.
  IF v_num IS NOT NULL THEN
    WITH days AS (
      SELECT b.bucket FROM tally.rollup_user_bits b
       WHERE b.project = p_project AND b.level = p_day AND b.chunk = v_num / 8192
         AND get_bit(b.users, v_num % 8192) = 1
    ), hours AS (
      SELECT h.bucket FROM days d
        JOIN tally.rollup_user_bits h
          ON h.project = p_project AND h.level = p_hour
         AND h.bucket >= d.bucket AND h.bucket < d.bucket + v_day_ms * interval '1 millisecond'
         AND h.chunk = v_num / 8192 AND get_bit(h.users, v_num % 8192) = 1
    ), bits AS (
      SELECT p_day AS level, bucket FROM days UNION ALL SELECT p_hour, bucket FROM hours
    )
    SELECT coalesce(array_agg(level ORDER BY level, bucket), '{}'), coalesce(array_agg(bucket ORDER BY level, bucket), '{}')
      INTO v_bits_level, v_bits_bucket
      FROM bits;
  ELSE
    v_bits_level := '{}';
    v_bits_bucket := '{}';
  END IF;

  -- THE LIMIT (see the top): an hour or day with the user's bit but none of its counted rows.
  SELECT coalesce(array_agg(x.day ORDER BY x.day), '{}') INTO inexact_days
    FROM (SELECT DISTINCT to_timestamp(floor(date_part('epoch', s.bucket) * 1000 / v_day_ms) * v_day_ms / 1000.0) AS day
            FROM unnest(v_bits_level, v_bits_bucket) AS s(level, bucket)
           WHERE NOT EXISTS (SELECT 1 FROM unnest(e_level, e_bucket) AS c(level, bucket)
                              WHERE c.level = s.level AND c.bucket = s.bucket)) AS x;
  IF cardinality(inexact_days) > 0 AND NOT p_allow_inexact THEN
    RAISE EXCEPTION 'the counts of % day(s) hold events of this user that have no raw rows (older than the raw window, or stored with TALLY_STORE_RAW=false)',
      cardinality(inexact_days)
      USING ERRCODE = 'TL002',
            DETAIL = (SELECT string_agg(to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ',') FROM unnest(inexact_days) AS d);
  END IF;

  -- Decided before the first write, as the version row comes before the rollups in the lock order.
  v_any := v_num IS NOT NULL
        OR EXISTS (SELECT 1 FROM tally.events e WHERE e.project = p_project AND e.user_id = p_user_id)
        OR EXISTS (SELECT 1 FROM tally.sessions s WHERE s.project = p_project AND s.user_id = p_user_id);

  DELETE FROM tally.user_numbers n WHERE n.project = p_project AND n.user_id = p_user_id;

  INSERT INTO tally.user_tombstones (project, user_hash) VALUES (p_project, p_user_hash)
  ON CONFLICT (project, user_hash) DO NOTHING;

  DELETE FROM tally.event_ids i USING tally.events e
   WHERE e.project = p_project AND e.user_id = p_user_id AND i.project = p_project AND i.event_id = e.event_id;
  GET DIAGNOSTICS removed_event_ids = ROW_COUNT;

  DELETE FROM tally.events e WHERE e.project = p_project AND e.user_id = p_user_id;
  GET DIAGNOSTICS removed_events = ROW_COUNT;

  IF v_any THEN
    INSERT INTO tally.data_versions AS v (project, version) VALUES (p_project, 1)
    ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
    RETURNING v.version INTO new_version;
    PERFORM pg_notify('tally_data_versions', new_version || ' ' || p_project);
  END IF;

  -- Each counter row drops by the user's count: deleted where that is all of it (cheaper than an
  -- update to 0 and a delete), updated where more is left. Both in one statement: on one snapshot
  -- the two sets of rows are disjoint. Found rows short of the list means a row missing or
  -- smaller than the user's share. updated_at is left alone: user_activity_metrics.created_at
  -- reads it (migration 016).
  WITH c AS (
    SELECT * FROM unnest(e_level, e_bucket, e_type, e_count) AS c(level, bucket, type, k)
  ), d AS (
    DELETE FROM tally.rollup_events r USING c
     WHERE r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
       AND r.count = c.k
    RETURNING 1
  ), u AS (
    UPDATE tally.rollup_events r SET count = r.count - c.k FROM c
     WHERE r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
       AND r.count > c.k
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM u) INTO v_rows;
  IF v_rows <> cardinality(e_level) THEN
    RAISE EXCEPTION 'tally.rollup_events of project % disagrees with the raw rows of the user: % of % rows found holding at least the user''s count',
      p_project, v_rows, cardinality(e_level) USING ERRCODE = 'TL003';
  END IF;

  WITH c AS (
    SELECT * FROM unnest(g_level, g_bucket, g_type, g_page, g_count) AS c(level, bucket, type, page, k)
  ), d AS (
    DELETE FROM tally.rollup_pages r USING c
     WHERE r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
       AND r.page_id = c.page AND r.count = c.k
    RETURNING 1
  ), u AS (
    UPDATE tally.rollup_pages r SET count = r.count - c.k FROM c
     WHERE r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
       AND r.page_id = c.page AND r.count > c.k
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM u) INTO v_rows;
  IF v_rows <> cardinality(g_level) THEN
    RAISE EXCEPTION 'tally.rollup_pages of project % disagrees with the raw rows of the user: % of % rows found holding at least the user''s count',
      p_project, v_rows, cardinality(g_level) USING ERRCODE = 'TL003';
  END IF;

  IF v_num IS NOT NULL THEN
    -- A minute's users are in its hour's bits (the writer sets both from the same rows), so the
    -- user's minutes lie within its first and last hour: one range of the key, membership tested
    -- on each (no index on the arrays), rather than a join per hour. A minute of the user alone goes.
    SELECT min(s.bucket), max(s.bucket) + v_hour_ms * interval '1 millisecond' INTO v_from, v_to
      FROM unnest(v_bits_level, v_bits_bucket) AS s(level, bucket) WHERE s.level = p_hour;
    DELETE FROM tally.rollup_minute_users m
     WHERE m.project = p_project AND m.bucket >= v_from AND m.bucket < v_to AND m.users = ARRAY[v_num];
    UPDATE tally.rollup_minute_users m SET users = array_remove(m.users, v_num)
     WHERE m.project = p_project AND m.bucket >= v_from AND m.bucket < v_to AND m.users @> ARRAY[v_num];

    -- Emptied rows go in a second statement: one statement must not change a row twice.
    UPDATE tally.rollup_user_bits b SET users = set_bit(b.users, v_num % 8192, 0)
      FROM unnest(v_bits_level, v_bits_bucket) AS s(level, bucket)
     WHERE b.project = p_project AND b.level = s.level AND b.bucket = s.bucket AND b.chunk = v_num / 8192;
    DELETE FROM tally.rollup_user_bits b USING unnest(v_bits_level, v_bits_bucket) AS s(level, bucket)
     WHERE b.project = p_project AND b.level = s.level AND b.bucket = s.bucket AND b.chunk = v_num / 8192
       AND bit_count(b.users) = 0;
  END IF;

  -- After the version row, as tally sessions rebuild takes it (migration 011's lock order).
  PERFORM tally.session_project_lock(p_project, true);
  DELETE FROM tally.sessions s WHERE s.project = p_project AND s.user_id = p_user_id;
  GET DIAGNOSTICS removed_visits = ROW_COUNT;

  IF v_any THEN
    UPDATE tally.model_changes m SET user_ids = array_remove(m.user_ids, p_user_id)
     WHERE m.project = p_project AND m.user_ids @> ARRAY[p_user_id];
    INSERT INTO tally.model_changes (project, version, user_ids) VALUES (p_project, new_version, ARRAY[p_user_id]);
  END IF;
END
$$;
