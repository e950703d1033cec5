-- The person's deadline on an escalation, counted in business hours of the assignee's team
-- calendar, and that calendar's id and version (null: no calendar, the wall clock's due_by
-- applies). The read side counts the business time left on the calendar of that id.
ALTER TABLE rm_cases
    ADD COLUMN person_due_by    timestamptz,
    ADD COLUMN calendar_id      text,
    ADD COLUMN calendar_version text;
