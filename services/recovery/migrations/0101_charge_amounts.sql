-- How many charges of each kind and currency came at each amount: the cross-customer usual
-- amount of the charge-anomaly rule (docs/policy.md) is the median of all customers' charges of
-- a kind, and a median over rm_charges sorted every charge of the kind for each batch that
-- needed one (0.45 s at a million fee charges, growing with them). Over these counts it
-- reads one row per distinct amount, and gives the same value (percentile_disc(0.5)).
-- Projected with rm_charges, in the same statement; part of the `charges` rebuild.
CREATE TABLE rm_charge_amounts (
    kind     text    NOT NULL,
    currency text    NOT NULL,
    amount   numeric NOT NULL,
    charges  bigint  NOT NULL,
    PRIMARY KEY (kind, currency, amount)
);
INSERT INTO rm_charge_amounts (kind, currency, amount, charges)
SELECT kind, currency, amount, count(*) FROM rm_charges GROUP BY kind, currency, amount;
