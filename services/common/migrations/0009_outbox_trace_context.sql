-- The trace context (W3C traceparent and tracestate) of each queued message, kept with its
-- row so that the relay's publish span continues the trace of the work that queued it,
-- after a restart too. Null for a message queued outside any trace.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE outbox_parked ADD COLUMN traceparent text, ADD COLUMN tracestate text;
