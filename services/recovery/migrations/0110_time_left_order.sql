-- The cases by time left (`recoveryctl cases list --sort time-left`, the ops API's
-- ?sort=time-left): per status and per calendar a row's time left is counted on ('': the
-- wall clock), rows by the due time it counts to, then by id (the keyset cursor). Within one
-- such part the time left grows with the due time, so the order skips through the index to
-- each part and reads it from the front, stopping early (services/recovery/queries.py); the
-- expressions are the query's.
CREATE INDEX rm_cases_time_left_idx ON rm_cases (
    status,
    (coalesce(CASE WHEN person_due_by IS NOT NULL THEN calendar_id END, '')),
    (coalesce(person_due_by, due_by, sla_deadline)),
    case_id
);
