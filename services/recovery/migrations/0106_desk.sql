-- The escalation desk (docs/desk.md): what a queue row shows and what its search finds, on
-- the case row itself, and the indexes its pages read through. Filled by the projection
-- from here on; `recoveryctl replay rebuild --projection cases` fills them for older cases.
ALTER TABLE rm_cases
    ADD COLUMN charge_id      text,
    ADD COLUMN order_id       text,
    ADD COLUMN claimed_amount numeric,
    ADD COLUMN currency       text;

-- The queue: a status's cases by urgency, then by due time, then by id (the keyset cursor),
-- read from the front; decided cases, the great majority, are a status the queue never asks for.
CREATE INDEX rm_cases_desk_queue_idx ON rm_cases (
    status,
    (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END),
    (coalesce(due_by, sla_deadline)),
    case_id
);
CREATE INDEX rm_cases_assignee_idx ON rm_cases (assignee, status) WHERE assignee IS NOT NULL;
CREATE INDEX rm_cases_charge_idx ON rm_cases (charge_id) WHERE charge_id IS NOT NULL;
CREATE INDEX rm_cases_order_idx ON rm_cases (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX rm_cases_complaint_idx ON rm_cases (complaint_id);
