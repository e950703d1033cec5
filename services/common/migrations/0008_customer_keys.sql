-- One data key per customer (AES-256-GCM, services/common/eventstore/shred.py): the
-- personal fields of the customer's stored events are sealed under it. Forgetting the
-- customer deletes the row, and with it every way back to that data (crypto-shredding):
-- the events themselves stay as they are (append-only, 0007).
CREATE TABLE customer_keys (
    customer_id text        PRIMARY KEY,
    key         bytea       NOT NULL CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The services' role reads, makes and destroys keys; it never changes one.
REVOKE UPDATE, TRUNCATE ON customer_keys FROM recovery_app;
GRANT SELECT, INSERT, DELETE ON customer_keys TO recovery_app;
