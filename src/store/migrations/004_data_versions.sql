-- Per-project data version for the query cache (src/query/cache.ts). Every batch transaction that
-- stores events bumps its projects' rows before COMMIT, so the version a reader sees is exactly
-- as new as the data it can see.
CREATE TABLE tally.data_versions (
  project    text        PRIMARY KEY,
  version    bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

