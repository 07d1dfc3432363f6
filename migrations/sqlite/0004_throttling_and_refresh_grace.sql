-- 0004: defences against abuse and races.
--
-- Failed sign-ins, counted per account name and per client address, so that every replica
-- sharing this database throttles the same attacker (see sigil-core's throttle module).
-- `subject` is 'account:<lower-cased user name>' or 'address:<IP address>'. A row whose
-- last failure is older than the policy's window starts again from one.
CREATE TABLE sign_in_failures (
    subject TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    first_failure_at BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_last ON sign_in_failures (last_failure_at);

-- With --refresh-reuse-grace, a rotated refresh token keeps the response that rotated it,
-- encrypted under a key derived from the rotated token itself (AES-256-GCM), so a replay
-- by the same holder inside the grace window gets the same successor. Nobody without the
-- old token, including whoever reads the database, can open it. NULL in strict mode.
ALTER TABLE refresh_tokens ADD COLUMN sealed_successor TEXT;
