-- tally.write_events counts a batch's events by minute first, and only then by level: the counts
-- of tally.rollup_events and tally.rollup_pages per hour and day are sums of those per minute.
--
-- Why: both statements crossed every event with the three levels (minute, hour, day) and sorted
-- the product to group it: 15,000 rows for a batch of 5,000 events, 18 of the 32 ms that
-- rollup_pages' statement took (auto_explain of bench/write-profile.ts `bench`; figures in
-- docs/benchmarks.md, "Rollups by minute first"). A batch's events fall in few minutes, pages and
-- types, so the minute's groups are few (600 there) and crossing them with the levels is cheap.
--
-- Exactness: every level's width is a whole number of minutes (src/store/levels.ts: a minute, an
-- hour, a day, in UTC), so the bucket of a level is the same for an event and for the start of
-- its minute, and a level's count is the sum of its minutes' counts. A level that is not a whole
-- number of minutes is refused (an error, not a wrong count).
--
-- Otherwise migration 028's function, unchanged.

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

  -- Every level a whole number of minutes (the header).
  IF EXISTS (SELECT 1 FROM unnest(p_level_ms) AS l(ms) WHERE l.ms <> trunc(l.ms) OR l.ms::int8 % 60000 <> 0) THEN
    RAISE EXCEPTION 'rollup levels must be whole minutes wide (got % ms)', p_level_ms;
  END IF;

  INSERT INTO tally.rollup_events AS r (project, level, bucket, type, count)
  SELECT m.p, l.level, to_timestamp(floor(m.minute / l.ms) * l.ms / 1000.0), m.t, sum(m.n)::int8
    FROM (SELECT x.p, x.t, floor(x.ts / 60000) * 60000 AS minute, count(*) AS n
            FROM unnest(p_project, p_type, p_ts, p_is_bot) WITH ORDINALITY AS x(p, t, ts, b, i)
           WHERE fresh[x.i::int4] AND NOT x.b
           GROUP BY 1, 2, 3) AS m
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   GROUP BY m.p, l.level, 3, m.t
   ORDER BY m.p COLLATE "C", l.level, 3, m.t COLLATE "C"
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
  SELECT m.p, l.level, to_timestamp(floor(m.minute / l.ms) * l.ms / 1000.0), m.t, m.id, sum(m.n)::int8
    FROM (SELECT x.p, x.t, d.id, floor(x.ts / 60000) * 60000 AS minute, count(*) AS n
            FROM unnest(p_project, p_type, p_ts, p_page_url, p_is_bot) WITH ORDINALITY AS x(p, t, ts, u, b, i)
            -- Each distinct page looked up once, not once per event.
            JOIN (SELECT p.id, p.page_url FROM tally.page_urls p
                   WHERE p.page_url = ANY (ARRAY(SELECT DISTINCT u FROM unnest(p_page_url) AS u WHERE u IS NOT NULL))) AS d
              ON d.page_url = x.u
           WHERE fresh[x.i::int4] AND NOT x.b
           GROUP BY 1, 2, 3, 4) AS m
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   GROUP BY m.p, l.level, 3, m.t, m.id
   ORDER BY m.p COLLATE "C", l.level, 3, m.t COLLATE "C", m.id
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
