-- tally.delete_user of migration 022 (read its header: what goes, how each rollup is corrected,
-- THE LIMIT, the locks), made faster: same signature, same rows changed, same result and errors.
-- Measured statement by statement (bench/delete-user-lab.ts --mode explain: auto_explain, in a
-- rolled-back transaction) on scenario 9's data (1 M events, then one user of 100,000 events over
-- 30 days, every event on a (minute, page) row of its own), 022 took 3.5 s with the machine to
-- itself (docs/benchmarks.md, "Deleting a user"). Where it went:
--   * 1.9 s: tally.rollup_pages, 130,080 rows to correct (here all the user's alone). The DELETE
--     and the UPDATE of its one statement were each planned as a hash join of the list with the
--     whole table (1.6 million rows, spilled in 16 batches): a cost that grows with the project;
--   * 0.6 s: reading and grouping the raw rows (this did not get faster: see 1.);
--   * 0.4 s: the dedup keys, a hash join reading all of the project's 1.1 million tally.event_ids;
--   * 0.2 s: tally.rollup_events, 12,904 rows, the same two joins as rollup_pages.
-- What changes (none changes which rows are read, deleted or updated, or with what):
--   1. The buckets are date_bin(width, ts, epoch): in integer microseconds the floor of the event
--      time to the level's width, which is what 022's float arithmetic computes for event times in
--      whole milliseconds since 1970 (the only ones src/event/timestamp.ts accepts) and what the
--      writer stores. Page numbers are looked up per raw row (the user's few distinct pages are
--      memoized) and grouped by number, as 022 grouped them; URLs without a number are one group,
--      which matches no rollup_pages row, and the guard raises as in 022. (Grouping 300,000
--      (level, event) rows into 130,080 is most of this statement's time, before and after.)
--   2. The rollup rows are corrected by MERGE: one lookup per row of the list, then DELETE where
--      the row holds exactly the user's count, UPDATE where more, nothing where less or missing.
--      ROW_COUNT counts the rows it deleted or updated, which 022 counted as its DELETE plus its
--      UPDATE, so the guard (TL003) is the same. The lists go in (level, bucket) order, so the
--      lookups walk the primary key nearly in order (sorting on the text columns too cost more
--      than it saved).
--   3. The dedup keys: the user's event ids read once, then deleted by `= ANY`: one sorted walk of
--      the primary key, whatever the size of the project.
--   4. The user's hour and day bits are cleared by a MERGE as well, which deletes a row left empty
--      in the same pass (022 updated it, then deleted it in a second join).
--   5. For this function only (restored on return): work_mem 64 MB, so a heavy user's grouping
--      stays in memory; no hash or merge joins, so every join is the user's rows against an index,
--      however large the tables (as migration 019 does for refresh_sessions). The inexact check,
--      which compares two lists, is an EXCEPT, not a join.
-- After: 2.0 s for the same call (rollup_pages 0.7 s, dedup keys 0.14 s), and a median of 2.5 s
-- against 5.4 s in scenario 9 (docs/benchmarks.md).
-- TRICKY: CREATE OR REPLACE FUNCTION resets a function's SET clauses; a migration replacing this
-- function must repeat them.
CREATE OR REPLACE FUNCTION tally.delete_user(
  p_project text, p_user_id text, p_user_hash bytea,
  p_levels int2[], p_level_ms float8[], p_hour int2, p_day int2, p_allow_inexact boolean,
  OUT removed_events int8, OUT removed_event_ids int8, OUT removed_visits int8,
  OUT new_version int8, OUT inexact_days timestamptz[]
) LANGUAGE plpgsql
SET work_mem = '64MB'
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
  v_num int4;
  v_epoch CONSTANT timestamptz := 'epoch';
  v_hour_ms float8 := p_level_ms[array_position(p_levels, p_hour)];
  v_day_w interval := make_interval(secs => p_level_ms[array_position(p_levels, p_day)] / 1000);
  -- The counters to subtract: (level, bucket, type[, page], count), from the raw non-bot rows.
  e_level int2[]; e_bucket timestamptz[]; e_type text[]; e_count int8[];
  g_level int2[]; g_bucket timestamptz[]; g_type text[]; g_page int4[]; g_count int8[];
  -- The hours and days whose bit string has the user's bit set.
  v_bits_level int2[]; v_bits_bucket timestamptz[];
  v_event_ids text[];
  v_any boolean;
  v_rows int8;
  v_from timestamptz;
  v_to timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(741121, hashtext(p_project));

  SELECT n.num INTO v_num FROM tally.user_numbers n WHERE n.project = p_project AND n.user_id = p_user_id;

  -- As in 022, one pass over the raw non-bot rows: counts per (level, bucket, type, page), summed
  -- over the pages for rollup_events. Pages by number, looked up per row of the user (few
  -- distinct pages: PostgreSQL memoizes the lookups); the URLs without a number are one group,
  -- which matches no rollup_pages row, and the guard raises. Sorted by (level, bucket) (see 2.).
  WITH x AS (
    SELECT l.level, date_bin(make_interval(secs => l.ms / 1000), e.ts, v_epoch) AS bucket,
           e.type, e.page_url IS NOT NULL AS paged, d.id AS page, count(*) AS k
      FROM tally.events e
      LEFT JOIN tally.page_urls d ON d.page_url = e.page_url
      CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
     WHERE e.project = p_project AND e.user_id = p_user_id AND NOT e.is_bot
     GROUP BY 1, 2, 3, 4, 5
  ), c AS (
    SELECT x.level, x.bucket, x.type, sum(x.k)::int8 AS k FROM x GROUP BY 1, 2, 3
  ), g AS (
    SELECT x.level, x.bucket, x.type, x.page, x.k::int8 AS k FROM x WHERE x.paged
  )
  SELECT ca.level, ca.bucket, ca.type, ca.k, ga.level, ga.bucket, ga.type, ga.page, ga.k
    INTO e_level, e_bucket, e_type, e_count, g_level, g_bucket, g_type, g_page, g_count
    FROM (SELECT coalesce(array_agg(c.level), '{}') AS level,
                 coalesce(array_agg(c.bucket), '{}') AS bucket,
                 coalesce(array_agg(c.type), '{}') AS type,
                 coalesce(array_agg(c.k), '{}') AS k FROM (SELECT * FROM c ORDER BY 1, 2) AS c) AS ca,
         (SELECT coalesce(array_agg(g.level), '{}') AS level,
                 coalesce(array_agg(g.bucket), '{}') AS bucket,
                 coalesce(array_agg(g.type), '{}') AS type,
                 coalesce(array_agg(g.page), '{}') AS page,
                 coalesce(array_agg(g.k), '{}') AS k FROM (SELECT * FROM g ORDER BY 1, 2) AS g) AS ga;

  IF v_num IS NOT NULL THEN
    WITH days AS (
      SELECT b.bucket FROM tally.rollup_user_bits b
       WHERE b.project = p_project AND b.level = p_day AND b.chunk = v_num / 8192
         AND get_bit(b.users, v_num % 8192) = 1
    ), hours AS (
      SELECT h.bucket FROM days d
        JOIN tally.rollup_user_bits h
          ON h.project = p_project AND h.level = p_hour
         AND h.bucket >= d.bucket AND h.bucket < d.bucket + v_day_w
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

  -- THE LIMIT (022): an hour or day with the user's bit but none of its counted rows.
  SELECT coalesce(array_agg(DISTINCT date_bin(v_day_w, x.bucket, v_epoch) ORDER BY date_bin(v_day_w, x.bucket, v_epoch)), '{}')
    INTO inexact_days
    FROM (SELECT s.level, s.bucket FROM unnest(v_bits_level, v_bits_bucket) AS s(level, bucket)
          EXCEPT
          SELECT c.level, c.bucket FROM unnest(e_level, e_bucket) AS c(level, bucket)) AS x;
  IF cardinality(inexact_days) > 0 AND NOT p_allow_inexact THEN
    RAISE EXCEPTION 'the counts of % day(s) hold events of this user that have no raw rows (older than the raw window, or stored with TALLY_STORE_RAW=false)',
      cardinality(inexact_days)
      USING ERRCODE = 'TL002',
            DETAIL = (SELECT string_agg(to_char(d AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ',') FROM unnest(inexact_days) AS d);
  END IF;

  v_any := v_num IS NOT NULL
        OR EXISTS (SELECT 1 FROM tally.events e WHERE e.project = p_project AND e.user_id = p_user_id)
        OR EXISTS (SELECT 1 FROM tally.sessions s WHERE s.project = p_project AND s.user_id = p_user_id);

  DELETE FROM tally.user_numbers n WHERE n.project = p_project AND n.user_id = p_user_id;

  INSERT INTO tally.user_tombstones (project, user_hash) VALUES (p_project, p_user_hash)
  ON CONFLICT (project, user_hash) DO NOTHING;

  -- The raw rows do not change meanwhile: the project's batches wait for the lock taken above.
  SELECT coalesce(array_agg(e.event_id), '{}') INTO v_event_ids
    FROM tally.events e WHERE e.project = p_project AND e.user_id = p_user_id;
  DELETE FROM tally.event_ids i WHERE i.project = p_project AND i.event_id = ANY (v_event_ids);
  GET DIAGNOSTICS removed_event_ids = ROW_COUNT;

  DELETE FROM tally.events e WHERE e.project = p_project AND e.user_id = p_user_id;
  GET DIAGNOSTICS removed_events = ROW_COUNT;

  IF v_any THEN
    INSERT INTO tally.data_versions AS v (project, version) VALUES (p_project, 1)
    ON CONFLICT (project) DO UPDATE SET version = v.version + 1, updated_at = now()
    RETURNING v.version INTO new_version;
    PERFORM pg_notify('tally_data_versions', new_version || ' ' || p_project);
  END IF;

  -- Rows short of the list: a row missing, or smaller than the user's share (022). updated_at is
  -- left alone: user_activity_metrics.created_at reads it (migration 016).
  MERGE INTO tally.rollup_events r
  USING unnest(e_level, e_bucket, e_type, e_count) AS c(level, bucket, type, k)
     ON r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
   WHEN MATCHED AND r.count = c.k THEN DELETE
   WHEN MATCHED AND r.count > c.k THEN UPDATE SET count = r.count - c.k;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  IF v_rows <> cardinality(e_level) THEN
    RAISE EXCEPTION 'tally.rollup_events of project % disagrees with the raw rows of the user: % of % rows found holding at least the user''s count',
      p_project, v_rows, cardinality(e_level) USING ERRCODE = 'TL003';
  END IF;

  MERGE INTO tally.rollup_pages r
  USING unnest(g_level, g_bucket, g_type, g_page, g_count) AS c(level, bucket, type, page, k)
     ON r.project = p_project AND r.level = c.level AND r.bucket = c.bucket AND r.type = c.type
    AND r.page_id = c.page
   WHEN MATCHED AND r.count = c.k THEN DELETE
   WHEN MATCHED AND r.count > c.k THEN UPDATE SET count = r.count - c.k;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  IF v_rows <> cardinality(g_level) THEN
    RAISE EXCEPTION 'tally.rollup_pages of project % disagrees with the raw rows of the user: % of % rows found holding at least the user''s count',
      p_project, v_rows, cardinality(g_level) USING ERRCODE = 'TL003';
  END IF;

  IF v_num IS NOT NULL THEN
    -- As in 022: the minutes within the user's first and last hour.
    SELECT min(s.bucket), max(s.bucket) + v_hour_ms * interval '1 millisecond' INTO v_from, v_to
      FROM unnest(v_bits_level, v_bits_bucket) AS s(level, bucket) WHERE s.level = p_hour;
    DELETE FROM tally.rollup_minute_users m
     WHERE m.project = p_project AND m.bucket >= v_from AND m.bucket < v_to AND m.users = ARRAY[v_num];
    UPDATE tally.rollup_minute_users m SET users = array_remove(m.users, v_num)
     WHERE m.project = p_project AND m.bucket >= v_from AND m.bucket < v_to AND m.users @> ARRAY[v_num];

    -- The bit cleared; a row left with no bit goes (022: an UPDATE, then a DELETE of the emptied).
    MERGE INTO tally.rollup_user_bits b
    USING unnest(v_bits_level, v_bits_bucket) AS s(level, bucket)
       ON b.project = p_project AND b.level = s.level AND b.bucket = s.bucket AND b.chunk = v_num / 8192
     WHEN MATCHED AND bit_count(set_bit(b.users, v_num % 8192, 0)) = 0 THEN DELETE
     WHEN MATCHED THEN UPDATE SET users = set_bit(b.users, v_num % 8192, 0);
  END IF;

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
