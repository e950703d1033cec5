-- The audit trail's queries (services/recovery/audit.py): its records are events of type
-- recovery.audit.recorded.v1 on the streams audit-YYYY-MM-DD. Partial indexes, so the
-- rest of the log pays nothing for them: the newest records, the newest of a case, the
-- newest of a person (by global position, the order they were recorded in). A time window
-- uses events_type_occurred_idx. The queries name the event type as a literal, which the
-- planner needs to match a partial index's predicate.
CREATE INDEX events_audit_position_idx ON events (global_position)
    WHERE event_type = 'recovery.audit.recorded.v1';
CREATE INDEX events_audit_case_idx ON events ((data ->> 'case_id'), global_position)
    WHERE event_type = 'recovery.audit.recorded.v1';
CREATE INDEX events_audit_person_idx ON events ((data ->> 'person'), global_position)
    WHERE event_type = 'recovery.audit.recorded.v1';
