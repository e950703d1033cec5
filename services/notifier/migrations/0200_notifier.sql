-- The notifier's read model: one row per requested email, updated from the delivery outcome.
CREATE TABLE IF NOT EXISTS notifications (
    notification_id text PRIMARY KEY,
    case_id         text NOT NULL,
    causation       text NOT NULL,
    template        text NOT NULL,
    status          text NOT NULL DEFAULT 'requested'
                    CHECK (status IN ('requested', 'delivered', 'failed')),
    error           text,
    requested_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_case_idx ON notifications (case_id);

-- The delivery worker's record: one row per email it sent (or gave up on), so a redelivered
-- request is never sent twice.
CREATE TABLE IF NOT EXISTS deliveries (
    notification_id text PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    error           text,
    updated_at      timestamptz NOT NULL
);
