-- Views that let the seed systems' own SQL run unchanged against Tally (DESIGN.md, "Storage").
-- They read Tally's tables; nothing writes to them. Each keeps the seed's column names and order,
-- with `project` added last. Times are UTC `timestamp without time zone`, as the seeds declared them.
-- A relation of the same name that is not a view (say, the table a seed system left behind) is
-- kept as it is, with a notice: rename it and rerun `tally migrate` to get the view.

CREATE SCHEMA IF NOT EXISTS analytics;

CREATE FUNCTION tally.create_compat_view(qualified_name text, definition text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  kind "char";
BEGIN
  SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = to_regclass(qualified_name);
  IF kind IS NOT NULL AND kind <> 'v' THEN
    RAISE NOTICE 'tally: % exists and is not a view; left unchanged', qualified_name;
    RETURN;
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', qualified_name, definition);
END
$$;

-- Seeds 000-002: one row per minute bucket with that minute's exact unique users and page views
-- (the seeds wrote one row per flush, which could not be summed). created_at is when the
-- minute last changed, so "ORDER BY created_at DESC" shows the most recently active minutes.
SELECT tally.create_compat_view('public.user_activity_metrics', $v$
  SELECT (extract(epoch FROM m.bucket) / 60)::bigint AS id,
         (m.bucket AT TIME ZONE 'UTC') AS "timestamp",
         (SELECT count(*) FROM tally.rollup_users u
           WHERE u.project = m.project AND u.level = 0 AND u.bucket = m.bucket)::integer AS unique_users,
         m.page_view_count,
         (m.updated_at AT TIME ZONE 'UTC') AS created_at,
         m.project
    FROM (SELECT project, bucket,
                 coalesce(sum(count) FILTER (WHERE type = 'page_view'), 0)::bigint AS page_view_count,
                 max(updated_at) AS updated_at
            FROM tally.rollup_events
           WHERE level = 0
           GROUP BY project, bucket) m
$v$);

-- Seed 003 stored every event its /ingest accepted in click_events, whatever its event_type.
SELECT tally.create_compat_view('public.click_events', $v$
  SELECT e.id, e.event_id, e.user_id, e.type AS event_type, e.page_url,
         (e.ts AT TIME ZONE 'UTC') AS time_stamp,
         (e.stored_at AT TIME ZONE 'UTC') AS created_at,
         e.project
    FROM tally.events e
$v$);

-- Seed 003's per-page counts of those events, per user (its gateway asks "how many events did
-- this user have on this page").
SELECT tally.create_compat_view('public.page_clicks', $v$
  SELECT e.page_url, e.user_id, count(*)::bigint AS click_count,
         (max(e.ts) AT TIME ZONE 'UTC') AS last_clicked_at,
         e.project
    FROM tally.events e
   WHERE e.page_url IS NOT NULL
   GROUP BY e.project, e.page_url, e.user_id
$v$);

-- Seed 004: its events table. data is the event's properties (seed 004's `data` field).
SELECT tally.create_compat_view('analytics.events', $v$
  SELECT e.id, e.type AS event_type, e.user_id, e.service,
         (e.ts AT TIME ZONE 'UTC') AS "timestamp",
         e.properties AS data,
         (e.stored_at AT TIME ZONE 'UTC') AS created_at,
         e.project
    FROM tally.events e
$v$);
