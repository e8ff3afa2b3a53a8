-- The storage of one batch of events (src/store/write-events.ts), as one function call: one
-- round trip, and its statements run one after the other in the caller's transaction (or, called
-- alone, in the implicit transaction of that one statement), so nothing rests on the order in
-- which PostgreSQL runs the parts of a single statement.
--
-- The events come as parallel arrays, one element per event, unique by (project, event_id) and
-- sorted by it. In order, which is also the order in which every batch takes its row locks (the
-- shared rows last, see src/store/rollup-writes.ts):
--   1. the dedup keys; the events whose key was new now are the fresh ones (`fresh`, returned:
--      one flag per event);
--   2. the raw rows of the fresh events at or after p_raw_cutoff (epoch ms; NULL: raw storage off);
--   3. the (bucket, user) rows of rollup_users given (computed by the caller from all the events);
--   4. the data version of each project with a fresh event, with a NOTIFY
--      (src/store/data-versions.ts, channel VERSIONS_CHANNEL);
--   5. the counters of the fresh events at each level (p_levels, bucket widths p_level_ms,
--      from src/store/levels.ts), and the user bits given.
--
-- TRICKY: users rows and bits derived from events that were not fresh are harmless: such an
-- event's key was committed by the transaction that stored it, with its users rows and bits, so
-- ON CONFLICT DO NOTHING and OR-ing the bits change nothing. Counters are not idempotent, so they
-- are computed here from the fresh events only.
-- (Wrong, fixed by migration 014: a re-sent event_id may differ from the stored event in time,
-- user or bot flag, and then its rows are new. Since 014 only the rows of fresh events are
-- written, and their bits computed here.)
CREATE FUNCTION tally.write_events(
  p_levels int2[], p_level_ms float8[],
  p_project text[], p_event_id text[], p_type text[], p_ts float8[], p_page_url text[],
  p_raw_cutoff float8, p_user_id text[], p_received_at float8[], p_referrer text[],
  p_session_id text[], p_service text[], p_properties text[],
  p_users_project text[], p_users_level int2[], p_users_bucket float8[], p_users_user_id text[],
  p_bits_project text[], p_bits_level int2[], p_bits_bucket float8[], p_bits_chunk int4[], p_bits_hex text[],
  OUT fresh bool[], OUT projects text[], OUT versions int8[]
) LANGUAGE plpgsql AS $$
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
      (project, event_id, type, user_id, ts, received_at, page_url, referrer, session_id, service, properties)
    SELECT x.p, x.id, x.t, x.u, to_timestamp(x.ts / 1000.0), to_timestamp(x.r / 1000.0), x.pu, x.rf, x.s, x.sv, x.pr::jsonb
      FROM unnest(p_project, p_event_id, p_type, p_user_id, p_ts, p_received_at,
                  p_page_url, p_referrer, p_session_id, p_service, p_properties)
             WITH ORDINALITY AS x(p, id, t, u, ts, r, pu, rf, s, sv, pr, i)
     WHERE fresh[x.i::int4] AND x.ts >= p_raw_cutoff;
  END IF;

  INSERT INTO tally.rollup_users (project, level, bucket, user_id)
  SELECT x.p, x.l, to_timestamp(x.b / 1000.0), x.u
    FROM unnest(p_users_project, p_users_level, p_users_bucket, p_users_user_id) AS x(p, l, b, u)
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
    FROM unnest(p_project, p_type, p_ts) WITH ORDINALITY AS x(p, t, ts, i)
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   WHERE fresh[x.i::int4]
   GROUP BY x.p, l.level, 3, x.t
   ORDER BY x.p COLLATE "C", l.level, 3, x.t COLLATE "C"
  ON CONFLICT (project, level, bucket, type) DO UPDATE SET count = r.count + excluded.count, updated_at = now();

  INSERT INTO tally.rollup_pages AS r (project, level, bucket, type, page_url, count)
  SELECT x.p, l.level, to_timestamp(floor(x.ts / l.ms) * l.ms / 1000.0), x.t, x.u, count(*)
    FROM unnest(p_project, p_type, p_ts, p_page_url) WITH ORDINALITY AS x(p, t, ts, u, i)
    CROSS JOIN unnest(p_levels, p_level_ms) AS l(level, ms)
   WHERE fresh[x.i::int4] AND x.u IS NOT NULL
   GROUP BY x.p, l.level, 3, x.t, x.u
   ORDER BY x.p COLLATE "C", l.level, 3, x.t COLLATE "C", x.u COLLATE "C"
  ON CONFLICT (project, level, bucket, type, page_url) DO UPDATE SET count = r.count + excluded.count;

  INSERT INTO tally.rollup_user_bits AS r (project, level, bucket, chunk, users)
  SELECT x.p, x.l, to_timestamp(x.b / 1000.0), x.c, ('x' || x.h)::bit(8192)
    FROM unnest(p_bits_project, p_bits_level, p_bits_bucket, p_bits_chunk, p_bits_hex) AS x(p, l, b, c, h)
  ON CONFLICT (project, level, bucket, chunk) DO UPDATE SET users = r.users | excluded.users;
END
$$;

-- tally.require_all_new (migration 008), the guard of the former one-statement write, stays:
-- processes of the previous version still call it during a rolling upgrade. Nothing here uses
-- it; a later migration may drop it once no such process can be running.
