-- Leases with fencing: `lease_owner` is a random id per process (no host names or pids), and
-- `lease_token` counts the claims of the action. A claim increments it; every update names the
-- token its holder claimed with and is refused once the token has moved on (the lease was taken
-- over), in the same transaction that records the step.
ALTER TABLE actions ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
