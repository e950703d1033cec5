-- Outbox rows the broker refuses for good (too large, an invalid or forbidden topic) are
-- parked here by the relay, with the error, so that the rows behind them are published.
-- `recoveryctl outbox retry` moves them back to the end of the outbox.
CREATE TABLE outbox_parked (
    id         bigint      PRIMARY KEY,  -- its id in the outbox
    relay      text        NOT NULL,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL,
    event_id   text,
    created_at timestamptz NOT NULL,     -- when it was queued
    parked_at  timestamptz NOT NULL DEFAULT now(),
    error      text        NOT NULL      -- the error's class and message
);
CREATE INDEX outbox_parked_relay_idx ON outbox_parked (relay, id);

-- What `recoveryctl dlq` has read of the dead-letter topic: each dead letter once (by its
-- event id), the raw record as it is on the topic, and what a redrive did with it. The
-- topic stays the source; this is its index, filled from it on every command.
CREATE TABLE dead_letters (
    id            text        PRIMARY KEY,  -- the dead letter's event id
    dlq_topic     text        NOT NULL,
    dlq_partition integer     NOT NULL,
    dlq_offset    bigint      NOT NULL,
    received_at   timestamptz NOT NULL,
    source        text        NOT NULL,
    topic         text        NOT NULL,     -- the original's topic
    code          text        NOT NULL,
    raw           bytea       NOT NULL,     -- the dead letter event (bytes: text may hold NUL)
    redriven_at   timestamptz,
    redrives      jsonb       NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);

-- How far `recoveryctl dlq` has read each partition of the dead-letter topic.
CREATE TABLE dead_letter_positions (
    dlq_topic   text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (dlq_topic, partition)
);
