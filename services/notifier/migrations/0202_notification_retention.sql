-- Retention (services/notifier/retention.py): NOTIFICATION_RETENTION_DAYS after an email's
-- outcome its delivery row is deleted. Each prune finds the rows due through this index,
-- oldest first, a batch at a time.
CREATE INDEX IF NOT EXISTS deliveries_finished_idx ON deliveries (updated_at) WHERE status <> 'sending';
