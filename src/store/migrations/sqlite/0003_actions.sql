-- Connector-owned state kept between scans (e.g. when an AWS account was last fully listed).
ALTER TABLE sources ADD COLUMN connector_state TEXT;

-- Incremental scans read the ledger's credentials of one identity.
CREATE INDEX credentials_identity ON credentials(source, identity_external_id);

-- Actions on one credential (rotate, disable, delete, quarantine): persisted state machines.
-- `state` is the machine's JSON state: key ids, times, never a secret.
CREATE TABLE actions (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    source      TEXT NOT NULL,
    credential_external_id TEXT NOT NULL,
    identity_external_id TEXT NOT NULL,
    -- `cli` or `policy:<id>`
    origin      TEXT NOT NULL,
    -- running | waiting | done | refused | failed
    status      TEXT NOT NULL,
    step        TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    next_at     TEXT,
    -- The keywarden process driving the action (`host:pid`) and until when: a second process
    -- leaves it alone unless the lease ran out or its holder is known to be dead.
    lease_owner TEXT,
    lease_until TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
-- At most one unfinished action per credential.
CREATE UNIQUE INDEX actions_one_open ON actions(source, credential_external_id)
    WHERE status IN ('running', 'waiting');
CREATE INDEX actions_status ON actions(status);

-- Every step an action entered, in order, written before the step is taken.
CREATE TABLE action_steps (
    action_id   INTEGER NOT NULL REFERENCES actions(id),
    seq         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    step        TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT,
    PRIMARY KEY (action_id, seq)
);
