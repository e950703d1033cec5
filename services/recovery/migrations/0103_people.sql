-- The people who sign in to the escalation desk through the built-in issuer, and their
-- sign-in tokens. A token is kept only as its SHA-256 (a random 256-bit secret needs no
-- slow hash): the table cannot sign anyone in. Disabling a person stops their tokens at
-- once; rows are never deleted, so a past decision's `agent:<id>` still names someone.
CREATE TABLE people (
    id          text        PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$'),
    name        text,
    role        text        NOT NULL CHECK (role IN ('agent', 'supervisor', 'auditor')),
    enabled     boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);

CREATE TABLE person_tokens (
    token_sha256 bytea       PRIMARY KEY CHECK (length(token_sha256) = 32),
    person_id    text        NOT NULL REFERENCES people (id),
    issued_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_tokens_person_idx ON person_tokens (person_id);
