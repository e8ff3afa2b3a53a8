-- tally.write_events writes the rollup_users rows and user bits of the fresh events only. Until
-- now the caller derived them from every event of the batch, and migration 009 took the rows of
-- events that turned out not fresh to be harmless, as rows the stored event had written already.
-- They are not when a re-sent event_id differs from the stored event (another time, user or bot
-- flag): its rows are new, and the batch counted its user. The statements and their order are
-- those of migration 012 (read it, and 009's header); what changes:
--   3. each (bucket, user) row given comes with the events that derive it (p_users_event[
--      p_users_from:p_users_to], ordinals into the event arrays; src/store/rollup-writes.ts), and
--      only a row with a fresh event among them is written: `keep`, one flag per row;
--   5. the user bits are no longer given: they are the bits of the rows kept, OR-ed per (project,
--      level, bucket, chunk) here from each row's user number (p_users_num, user-numbers.ts).
--      A kept row that existed already has its bit set already (migration 005), and OR-ing it
--      again changes nothing; a row that is not kept sets no bit.
-- The caller remembers (known-user-rows.ts) only the rows it sent that have a fresh event, after
-- the commit: those exist then; a row of a non-fresh event may not.
--
-- The previous signature is dropped, not kept beside the new one: a process of the previous
-- version would still write the rows of non-fresh events, so during an upgrade its writes fail
-- rather than count users this version would not.
DROP FUNCTION tally.write_events(
  int2[], float8[], text[], text[], text[], float8[], text[], bool[], float8, text[], float8[], text[],
  text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[], text[],
  text[], text[], text[], text[], float8, text[], int2[], float8[], text[], text[], int2[], float8[], int4[],
  text[]);

CREATE FUNCTION tally.write_events(
  p_levels int2[], p_level_ms float8[],
  p_project text[], p_event_id text[], p_type text[], p_ts float8[], p_page_url text[], p_is_bot bool[],
  p_raw_cutoff float8, p_user_id text[], p_received_at float8[], p_referrer text[],
  p_session_id text[], p_service text[], p_properties text[],
  p_user_agent text[], p_country text[], p_hostname text[], p_path text[], p_referrer_host text[],
  p_utm_source text[], p_utm_medium text[], p_utm_campaign text[], p_utm_term text[], p_utm_content text[],
  p_channel text[], p_browser text[], p_os text[], p_device text[],
  p_timeout_ms float8,
  p_users_project text[], p_users_level int2[], p_users_bucket float8[], p_users_user_id text[],
  p_users_num int4[], p_users_from int4[], p_users_to int4[], p_users_event int4[],
  OUT fresh bool[], OUT projects text[], OUT versions int8[]
) LANGUAGE plpgsql AS $$
DECLARE
  keep bool[];
BEGIN
  WITH k AS (
    INSERT INTO tally.event_ids (project, event_id)
    SELECT * FROM unnest(p_project, p_event_id)
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

  INSERT INTO tally.rollup_users (project, level, bucket, user_id)
  SELECT x.p, x.l, to_timestamp(x.b / 1000.0), x.u
    FROM unnest(p_users_project, p_users_level, p_users_bucket, p_users_user_id) WITH ORDINALITY AS x(p, l, b, u, i)
   WHERE keep[x.i::int4]
  ON CONFLICT DO NOTHING;

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

  INSERT INTO tally.rollup_pages AS r (project, level, bucket, type, page_url, count)
  SELECT x.p, l.level, to_timestamp(floor(x.ts / l.ms) * l.ms / 1000.0), x.t, x.u, count(*)
    FROM unnest(p_project, p_type, p_ts, p_page_url, p_is_bot) WITH ORDINALITY AS x(p, t, ts, u, b, i)
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   WHERE fresh[x.i::int4] AND NOT x.b AND x.u IS NOT NULL
   GROUP BY x.p, l.level, 3, x.t, x.u
   ORDER BY x.p COLLATE "C", l.level, 3, x.t COLLATE "C", x.u COLLATE "C"
  ON CONFLICT (project, level, bucket, type, page_url) DO UPDATE SET count = r.count + excluded.count;

  -- 8192 users per chunk: USERS_PER_CHUNK of src/store/user-numbers.ts, migration 005.
  INSERT INTO tally.rollup_user_bits AS r (project, level, bucket, chunk, users)
  SELECT x.p, x.l, to_timestamp(x.b / 1000.0), x.n / 8192, bit_or(set_bit(B'0'::bit(8192), x.n % 8192, 1))
    FROM unnest(p_users_project, p_users_level, p_users_bucket, p_users_num) WITH ORDINALITY AS x(p, l, b, n, i)
   WHERE keep[x.i::int4]
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
