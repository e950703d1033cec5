-- The delivery worker claims a request before sending it (status 'sending', with a lease),
-- not only records the outcome after a whole batch: a redelivered request whose email is
-- in flight is then recognised, and a claim whose worker died runs out and is
-- taken over. ``request`` is the request's CloudEvent, kept only while the email is in
-- flight (it holds the customer's address and the text) so that another worker can send it.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_status_check;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS request jsonb;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claim_id uuid;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('sending', 'delivered', 'failed'));
ALTER TABLE deliveries ADD CONSTRAINT deliveries_claim_check
    CHECK (status <> 'sending' OR (request IS NOT NULL AND claim_id IS NOT NULL AND claimed_until IS NOT NULL));
-- The sweeper's search: in-flight claims by lease end.
CREATE INDEX IF NOT EXISTS deliveries_claims_idx ON deliveries (claimed_until) WHERE status = 'sending';
