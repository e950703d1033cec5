-- The inbox is pruned by age (INBOX_RETENTION_HOURS): a BRIN index on received_at finds the
-- old entries without a scan of the whole table. Entries are inserted in time order, so a
-- BRIN summary per block range is exact enough, and it costs inserts next to nothing (a
-- B-tree would add an index insert to every message handled).
CREATE INDEX inbox_received_at_brin ON inbox USING brin (received_at);
