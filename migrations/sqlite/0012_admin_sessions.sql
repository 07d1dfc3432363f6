-- 0012: the admin console's sessions page and a client's usage facts.

-- Every live browser session, the most recently seen first, a page at a time: keyset
-- paging on (last_seen_at, id) over the sessions not ended.
CREATE INDEX browser_sessions_live ON browser_sessions (last_seen_at, id) WHERE ended_at IS NULL;

-- A client's live refresh families and its consents, counted on its page (and found by
-- the cascade when a client is deleted).
CREATE INDEX refresh_families_client ON refresh_families (client_id);
CREATE INDEX consents_client ON consents (client_id);
