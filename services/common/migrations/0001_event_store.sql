-- The event store: one row per event, streams ordered by version, the whole log ordered by
-- a gapless global position.
--
-- Why no bigserial: a sequence hands out numbers at insert time, but transactions commit in
-- any order, so a reader following "position > last seen" can pass a number whose
-- transaction has not committed yet and never come back for it (the classic skipped-event
-- bug). Instead every appending transaction takes one advisory transaction lock before it
-- reads max(global_position) and inserts; positions are therefore assigned in commit order
-- and a reader can never skip one. Appends are batched, so one lock per batch is cheap.
CREATE TABLE events (
    global_position bigint      NOT NULL,
    stream_id       text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, version)
);
CREATE UNIQUE INDEX events_global_position_key ON events (global_position);
CREATE UNIQUE INDEX events_event_id_key ON events (event_id);
CREATE INDEX events_type_occurred_idx ON events (event_type, occurred_at);
CREATE INDEX events_occurred_idx ON events (occurred_at);

-- Inbox: the ids of messages a consumer has handled, written in the same transaction as
-- what handling them produced, so a redelivered message changes nothing.
CREATE TABLE inbox (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

-- Outbox: messages waiting for the relay to publish them to Kafka, written in the same
-- transaction as the events they carry. The relay deletes a row once Kafka acknowledged it.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    relay      text        NOT NULL,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '[]'::jsonb,
    event_id   text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_relay_id_idx ON outbox (relay, id);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', NEW.relay);
    RETURN NULL;
END $$;
-- One notification per statement is enough to wake the relay (delivered at commit).
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_notify();
