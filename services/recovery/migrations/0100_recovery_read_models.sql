-- Read models of the recovery service, projected from the event store in the same
-- transaction as the events (and rebuilt from it by `recoveryctl replay rebuild`).

-- Charge history: what billing posted, for the anomaly rule and for cases to cite.
CREATE TABLE rm_charges (
    charge_id       text PRIMARY KEY,
    customer_id     text        NOT NULL,
    kind            text        NOT NULL,
    amount          numeric     NOT NULL,
    currency        text        NOT NULL,
    product_type    text,
    order_id        text,
    posted_at       timestamptz NOT NULL,
    refunded_amount numeric     NOT NULL DEFAULT 0
);
CREATE INDEX rm_charges_customer_kind_idx ON rm_charges (customer_id, kind, currency);
CREATE INDEX rm_charges_kind_idx ON rm_charges (kind, currency);

-- Cases, for the escalation desk and `recoveryctl cases`.
CREATE TABLE rm_cases (
    case_id      text PRIMARY KEY,
    customer_id  text        NOT NULL,
    complaint_id text        NOT NULL,
    category     text        NOT NULL,
    status       text        NOT NULL,
    owner_id     text        NOT NULL,
    priority     text,
    assignee     text,
    reason       text,
    sla_deadline timestamptz NOT NULL,
    due_by       timestamptz,
    contacts     integer     NOT NULL DEFAULT 1,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    decided_by   text,
    rule         text,
    outcome      text,
    within_sla   boolean,
    version      integer     NOT NULL
);
CREATE INDEX rm_cases_queue_idx ON rm_cases (status, due_by);
CREATE INDEX rm_cases_customer_idx ON rm_cases (customer_id);

-- Per customer: the case owner to keep, and automatic concessions for the guardrail.
CREATE TABLE rm_customer_owners (
    customer_id text PRIMARY KEY,
    owner_id    text NOT NULL
);
CREATE TABLE rm_concessions (
    customer_id text        NOT NULL,
    case_id     text        NOT NULL,
    decided_at  timestamptz NOT NULL,
    PRIMARY KEY (customer_id, case_id, decided_at)
);

-- Durable SLA timers: one row per (case, kind); a worker fires due rows with
-- FOR UPDATE SKIP LOCKED inside the transaction that records the outcome, so two instances
-- never fire one timer twice and a restart loses none.
CREATE TABLE rm_timers (
    case_id text        NOT NULL,
    kind    text        NOT NULL,
    due_at  timestamptz NOT NULL,
    PRIMARY KEY (case_id, kind)
);
CREATE INDEX rm_timers_due_idx ON rm_timers (due_at);

-- Cases waiting for a charge that billing has not sent yet.
CREATE TABLE rm_awaiting_charge (
    charge_id text NOT NULL,
    case_id   text NOT NULL,
    PRIMARY KEY (charge_id, case_id)
);

-- Projection checkpoints (used by rebuilds).
CREATE TABLE rm_checkpoints (
    projection text PRIMARY KEY,
    position   bigint NOT NULL
);
