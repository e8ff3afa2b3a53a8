-- API keys (issue 8). The key itself is never stored: only its SHA-256, which is enough for
-- keys of 256 random bits (nothing to brute-force, no salt needed; see SECURITY.md).
-- `prefix` is the first characters of the key, shown by `tally keys list` so a key can be
-- recognised and revoked without ever being displayed again.
CREATE TABLE tally.api_keys (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project    text        NOT NULL CHECK (project <> '' AND length(project) <= 128),
  scope      text        NOT NULL CHECK (scope IN ('read', 'write')),
  key_hash   bytea       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  prefix     text        NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
