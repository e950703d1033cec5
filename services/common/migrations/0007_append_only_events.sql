-- The event store is append-only at the database, not only in the code.
--
-- The services connect as members of the role `recovery_app` (docs/operations.md, "Database
-- roles"): it may read and write the tables they keep (inbox, outbox, read models, timers,
-- notifications, deliveries, dead letters), but on `events` only SELECT and INSERT. The
-- migrations run as the owner of the schema. The role is made here NOLOGIN when it is
-- missing: who logs in as it, and with which password, is the deployment's business
-- (`recoveryctl migrate --grant-login`, or a DBA).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recovery_app') THEN
        CREATE ROLE recovery_app NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object THEN NULL;  -- made meanwhile by a migration of another database
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'the role recovery_app does not exist and % may not create it', current_user
            USING HINT = 'have a DBA run CREATE ROLE recovery_app NOLOGIN, then migrate again';
END $$;

-- Tables are created unqualified, so they live in the first schema of the search path: the
-- grants name that one. Tables the owner creates later there (the migrations after this
-- one) get the same grants by default.
DO $$
DECLARE
    s text := current_schema();
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO recovery_app', s);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO recovery_app', s);
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO recovery_app', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO recovery_app', s);
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO recovery_app', s);
END $$;

-- The services read which migrations are applied (to start only on a current schema); only
-- the owner records them.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM recovery_app;
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM recovery_app;

-- And for everybody, the owner included: an event is never changed or removed. Erasure is
-- done by destroying keys kept elsewhere, never by touching events. A statement trigger
-- refuses the statement whatever it would match. The owner can still drop or alter the
-- table (a migration) and TRUNCATE it (a test resetting its database).
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only: % on events refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'events are never changed or deleted; append a new event instead';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
