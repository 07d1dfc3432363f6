-- 0011: the activity counters of the admin console's charts. Every replica adds its counts
-- every few seconds; counts only ever add up, so the order of writes does not matter.

-- Per minute, every client together. Kept for --activity-minute-retention.
CREATE TABLE activity_minutes (
    minute BIGINT NOT NULL,                 -- start of the minute, seconds since the epoch
    metric TEXT NOT NULL,                   -- sign_in, token, refresh_reuse, throttled, server_error
    label TEXT NOT NULL,                    -- e.g. the grant type, or password.ok; '' when none
    count BIGINT NOT NULL,
    PRIMARY KEY (minute, metric, label)
);

-- Per hour: the total of every client (client_id '') and each client's own count.
-- Kept for --activity-retention.
CREATE TABLE activity_hours (
    hour BIGINT NOT NULL,
    metric TEXT NOT NULL,
    label TEXT NOT NULL,
    client_id TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (hour, metric, label, client_id)
);
CREATE INDEX activity_hours_client ON activity_hours (client_id, metric, hour);
