-- A change feed for processes that keep a copy of the raw events and visits in memory (the query
-- process's per-project columnar model): which users' raw rows changed at each data version, in
-- commit order, so such a copy catches up by reloading those users instead of the whole project.
--
-- One row per data version bumped by tally.write_events (migration 016), written by the batch's own
-- statement (src/store/write-events.ts), so in its transaction even in autocommit: `user_ids` are
-- the DISTINCT user_id of the batch's events of that project that were fresh (key new) AND stored
-- raw, exactly the condition of write_events' INSERT INTO tally.events (raw storage on,
-- p_raw_cutoff not NULL, and ts >= p_raw_cutoff); the visits (tally.refresh_sessions) change for
-- those same events only. Possibly empty: a project whose fresh events were all before the raw
-- cutoff, or every project with raw storage off (p_raw_cutoff NULL: no raw rows exist). Every
-- bump of tally.write_events has its row, also then: the simplest contract. A batch with nothing
-- fresh bumps no version, so it writes no row either.
--
-- Every other bump writes no row: retention (partitions.ts), the visit rebuild
-- (sessions-store.ts, and the dimension backfill's through it), project moves, migrations that
-- bump every project (016), `markModelRebuild` (model-feed.ts) and any admin bump. TRICKY: the
-- dimension backfill's own batches (dimension-backfill.ts) rewrite raw rows without moving a
-- version, as they always did for the query cache; its visit rebuild afterwards moves one without
-- a row, so a reader catches up with them then, by reloading. THE CONTRACT:
-- the versions covered by rows are exactly those a reader can apply incrementally; a reader that
-- finds a version in its interval without a row reloads the project (readModelChanges in
-- src/store/model-feed.ts says whether the interval is complete).
--
-- Versions of one project commit in order (the data_versions row lock), so once a reader sees
-- version V committed, every row up to V is visible too; it reads the version, the feed and the
-- users' rows in one snapshot.
--
-- Rows older than MODEL_CHANGES_KEEP_MS (one hour, model-feed.ts) are deleted by the periodic
-- maintenance of the roles that write batches: a reader further behind than that finds the
-- interval incomplete and reloads (the gap rule). created_at is the batch's transaction start,
-- not its commit: pruning goes by it only, never the order. No index on it: the table holds an
-- hour of batches (one row per project per batch), scanned once per pruning. Size: 5.4 bytes per
-- event written in that hour (bench/web-dataset.ts in 2,000-event batches: 590 users a row),
-- against 472 for the raw rows and their indexes.
CREATE TABLE tally.model_changes (
  project    text        NOT NULL,
  version    bigint      NOT NULL,
  user_ids   text[]      NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project, version)
);
