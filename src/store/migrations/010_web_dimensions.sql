-- Web analytics (issue 20): what each stored event gains, and the visits (sessions) table.
--
-- The dimensions are derived once, by src/event/derive.ts, in the writer that both modes share,
-- and stored on the raw row, so every filter and breakdown reads them without parsing. The client
-- address is never stored: only the country looked up from it at ingest.
ALTER TABLE tally.events
  ADD COLUMN user_agent    text,
  ADD COLUMN country       text,     -- ISO 3166-1 alpha-2, upper case
  ADD COLUMN hostname      text,     -- page_url's host, lower case
  ADD COLUMN path          text,     -- page_url's path: no query string, no fragment
  ADD COLUMN referrer_host text,     -- the referrer's host, NULL when none or the site's own host
  ADD COLUMN utm_source    text,
  ADD COLUMN utm_medium    text,
  ADD COLUMN utm_campaign  text,
  ADD COLUMN utm_term      text,
  ADD COLUMN utm_content   text,
  ADD COLUMN channel       text,     -- src/event/derive.ts, the channel rule table
  ADD COLUMN browser       text,
  ADD COLUMN os            text,
  ADD COLUMN device        text,     -- desktop | mobile | tablet (NULL: no user agent)
  ADD COLUMN is_bot        boolean NOT NULL DEFAULT false;

-- One row per visit: a run of one user's events with no gap longer than the session timeout
-- (session_key ''), or the events sharing an explicit session_id (session_key = that id). Kept
-- exact under late, out-of-order and duplicate events by tally.refresh_sessions, in the batch's
-- own transaction: only the visits next to the batch's events are recomputed from the raw rows.
-- A visit's dimensions are those of its first event (entry), except exit_page.
CREATE TABLE tally.sessions (
  project       text        NOT NULL,
  user_id       text        NOT NULL,
  session_key   text        NOT NULL,
  started_at    timestamptz NOT NULL,
  ended_at      timestamptz NOT NULL,
  events        integer     NOT NULL,
  page_views    integer     NOT NULL,
  entry_page    text,       -- path of the first page view (NULL: none)
  exit_page     text,       -- path of the last page view
  hostname      text,
  referrer_host text,
  channel       text,
  utm_source    text,
  utm_medium    text,
  utm_campaign  text,
  utm_term      text,
  utm_content   text,
  browser       text,
  os            text,
  device        text,
  country       text,
  is_bot        boolean     NOT NULL,
  PRIMARY KEY (project, user_id, session_key, started_at)
);
CREATE INDEX sessions_started ON tally.sessions (project, started_at);
