-- Refunds that arrive before their charge. The charge history's refunded_amount was
-- updated by the refund itself, so a refund reaching the service before its charge (two
-- topics, no order between them) matched no row and was lost from the read model. Such a
-- refund waits here and is added to the charge's row when the charge comes.
CREATE TABLE rm_early_refunds (
    charge_id text    NOT NULL,
    amount    numeric NOT NULL
);
CREATE INDEX rm_early_refunds_charge_idx ON rm_early_refunds (charge_id);

-- What was lost so far, from the event store: every charge's refunds in total, and those
-- of charges not posted yet set aside for them.
UPDATE rm_charges c SET refunded_amount = r.total
FROM (SELECT substr(stream_id, 8) AS charge_id, sum((data ->> 'amount')::numeric) AS total
      FROM events WHERE event_type = 'billing.charge.refunded.v1' GROUP BY stream_id) AS r
WHERE c.charge_id = r.charge_id AND c.refunded_amount <> r.total;
INSERT INTO rm_early_refunds (charge_id, amount)
SELECT substr(e.stream_id, 8), (e.data ->> 'amount')::numeric
FROM events e
WHERE e.event_type = 'billing.charge.refunded.v1'
  AND NOT EXISTS (SELECT 1 FROM rm_charges c WHERE c.charge_id = substr(e.stream_id, 8));
