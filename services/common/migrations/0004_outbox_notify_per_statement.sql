-- The outbox wakes its relays once per statement rather than once per row.
--
-- 0001 notified from a row trigger: a batch's COPY of 1,500 messages ran the trigger
-- function 1,500 times (PostgreSQL folds the identical notifications into one, at commit).
-- A statement trigger sees the inserted rows as a transition table and notifies each relay
-- named in them once: the same notifications, about a quarter less time for the COPY
-- (measured: 12.5 → 9.6 ms for 1,500 rows, 0.75 → 0.64 ms for 50).
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', r.relay) FROM (SELECT DISTINCT relay FROM inserted) AS r;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
