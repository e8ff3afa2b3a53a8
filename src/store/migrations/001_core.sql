-- Tally's core schema. Levels: 0 = minute, 1 = hour, 2 = day (UTC buckets).

-- Dedup ledger: one row per (project, event_id) ever accepted, kept for at least the raw
-- retention window. Separate from the raw table so that dedup works with raw storage off and
-- across the day partitions (a partitioned table cannot enforce a key without the partition column).
CREATE TABLE tally.event_ids (
  project  text        NOT NULL,
  event_id text        NOT NULL,
  seen_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project, event_id)
);
CREATE INDEX event_ids_seen_at ON tally.event_ids USING brin (seen_at);

CREATE SEQUENCE tally.events_id_seq;
CREATE TABLE tally.events (
  id          bigint      NOT NULL DEFAULT nextval('tally.events_id_seq'),
  project     text        NOT NULL,
  event_id    text        NOT NULL,
  type        text        NOT NULL,
  user_id     text        NOT NULL,
  ts          timestamptz NOT NULL,
  received_at timestamptz NOT NULL,
  page_url    text,
  referrer    text,
  session_id  text,
  service     text,
  properties  jsonb,
  stored_at   timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
CREATE INDEX events_user ON tally.events (project, user_id, ts DESC);

CREATE TABLE tally.rollup_events (
  project    text        NOT NULL,
  level      smallint    NOT NULL CHECK (level IN (0, 1, 2)),
  bucket     timestamptz NOT NULL,
  type       text        NOT NULL,
  count      bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project, level, bucket, type)
);

-- Events that carry a page_url, by type and page (page views, clicks, ...).
CREATE TABLE tally.rollup_pages (
  project  text        NOT NULL,
  level    smallint    NOT NULL CHECK (level IN (0, 1, 2)),
  bucket   timestamptz NOT NULL,
  type     text        NOT NULL,
  page_url text        NOT NULL,
  count    bigint      NOT NULL,
  PRIMARY KEY (project, level, bucket, type, page_url)
);

-- Exact active users: one row per user per bucket.
CREATE TABLE tally.rollup_users (
  project text        NOT NULL,
  level   smallint    NOT NULL CHECK (level IN (0, 1, 2)),
  bucket  timestamptz NOT NULL,
  user_id text        NOT NULL,
  PRIMARY KEY (project, level, bucket, user_id)
);

CREATE TABLE tally.positions (
  group_id    text        NOT NULL,
  topic       text        NOT NULL,
  partition   integer     NOT NULL,
  next_offset bigint      NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE tally.dead_letters (
  id          bigserial PRIMARY KEY,
  project     text,
  reason      text        NOT NULL,
  detail      text,
  payload     bytea,
  source      text        NOT NULL,
  topic       text,
  partition   integer,
  "offset"    bigint,
  received_at timestamptz NOT NULL DEFAULT now(),
  replayed_at timestamptz
);
CREATE INDEX dead_letters_received ON tally.dead_letters (received_at);
