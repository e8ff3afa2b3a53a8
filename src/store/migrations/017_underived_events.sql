-- Events stored before migration 010 have none of the dimensions src/event/derive.ts gives every
-- new event: no path, hostname, referrer host, UTM tags or channel, so a breakdown by page or
-- source shows them as "(none)". Those that can be derived (a page_url or a referrer: such an
-- event is at least Direct, so channel is never NULL once derived) are listed by this partial
-- index; src/store/dimension-backfill.ts derives them after the upgrade, in batches, and
-- rebuilds the visits of their projects (a visit takes the dimensions of its first event).
-- Every event stored since migration 012 is derived on write and never enters the index, so it
-- stays empty once the backfill has run, and "is there anything to derive" is one index probe.
-- Without a user_agent (none was stored before migration 010) there is no browser, OS, device or
-- bot flag to derive, and the client address was never stored: no country either.
--
-- Building it reads every stored event once.
SET LOCAL statement_timeout = 0;

CREATE INDEX events_underived ON tally.events (project)
  WHERE channel IS NULL AND (page_url IS NOT NULL OR referrer IS NOT NULL);

-- The projects whose events were derived but whose visits were not yet rebuilt from them: written
-- in the transaction of each derived batch, deleted once the rebuild has committed (a crash in
-- between repeats the rebuild), so a restart in between still rebuilds them.
CREATE TABLE tally.pending_visit_rebuilds (
  project text PRIMARY KEY
);
