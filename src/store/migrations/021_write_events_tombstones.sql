-- The write path honours deleted users (issue 22): a batch drops the events of a user with a
-- tombstone (tally.user_tombstones, migration 020) and counts them there, so late events, Kafka and
-- dead-letter replays and client retries never bring a deleted user back.
--
-- tally.user_hash_key: the deployment's key of the user hashes (src/store/user-hash.ts,
-- userHashKey). A key given as TALLY_USER_HASH_KEY is never stored, only its fingerprint
-- (HMAC(key, 'tally:fingerprint')), so a process started with another key is refused instead of
-- writing hashes no tombstone matches; without TALLY_USER_HASH_KEY the first process generates
-- one and stores it in `key`. One row.
CREATE TABLE tally.user_hash_key (
  id int PRIMARY KEY CHECK (id = 1),
  key bytea CHECK (length(key) >= 32),
  fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32)
);

-- tally.write_events as in migration 016 (read its header, and those of 014, 012 and 009); what
-- changes:
--   1. p_user_hash and p_user_hash_of: the keyed hash of each distinct user of the batch, and for
--      each event the ordinal of its user's in p_user_hash; sent also with raw storage off (when
--      p_user_id is NULL); the tombstones are matched by them. Not a hash per event: 5,000 of them
--      cost the statement 15-20 ms to send and parse, a few distinct ones and an int4 per event a
--      few.
--   2. FIRST, before any row lock, each project of the batch's lock 741121 in SHARED mode, in
--      project order (p_projects: the distinct projects of p_project, which the caller has at hand;
--      a DISTINCT over the events here would cost as much as a pass of the batch): batches never wait on each other there, and a deletion (tally.delete_user,
--      migration 022) takes it EXCLUSIVE, so it waits for the batches in flight, and a batch
--      that comes later waits for the deletion's COMMIT, and then (READ COMMITTED: each statement
--      sees what committed before it began) finds the tombstone. Without the lock a batch that
--      checked before the deletion committed would add the user's events back after it. The
--      two-key form, so it never meets the one-key locks of refresh_sessions (migration 011,
--      whose project lock is 741120).
--   3. dropped[i]: the event's (project, user hash) has a tombstone. One probe of the primary key
--      when no project of the batch has any (nearly every batch); else one per distinct user; and
--      only when one of them is deleted (a late event, a replay) a search per event.
--      Dropped events are not inserted into tally.event_ids, so they are not fresh, and nothing
--      after keys on anything but `fresh`: no raw row, no rollup, no user set, no version bump,
--      no visit, no feed row (write-events.ts). They are counted into their tombstones
--      (dropped_events, last_dropped_at), whose rows are locked in key order, after the dead
--      letters and before the keys: the order of `tally projects move` (project-move.ts).
--   4. OUT dropped bool[], one flag per event.
--
-- The previous signature is dropped: a process of the previous version would write a deleted
-- user's events.
DROP FUNCTION tally.write_events(
  int2[], float8[], text[], text[], text[], float8[], text[], bool[], float8, text[], float8[], text[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[],
  text[], text[], text[], text[], float8, text[], int2[], float8[], int4[], int4[], int4[], int4[]);

CREATE FUNCTION tally.write_events(
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

  -- Last, so its per-user advisory locks come after every row lock of the batch (migration 011);
  -- `tally sessions rebuild` takes the version row, then the sessions table, in the same order.
  IF p_raw_cutoff IS NOT NULL THEN
    PERFORM tally.refresh_sessions(s.p, s.u, s.ts, s.sid, p_timeout_ms)
       FROM (SELECT array_agg(x.p ORDER BY x.i) AS p, array_agg(x.u ORDER BY x.i) AS u,
                    array_agg(x.ts ORDER BY x.i) AS ts, array_agg(x.s ORDER BY x.i) AS sid
               FROM unnest(p_project, p_user_id, p_ts, p_session_id) WITH ORDINALITY AS x(p, u, ts, s, i)
              WHERE fresh[x.i::int4] AND x.ts >= p_raw_cutoff) AS s
      WHERE s.p IS NOT NULL;
  END IF;
END
$$;
