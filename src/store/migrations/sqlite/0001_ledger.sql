-- The credential ledger. Timestamps are RFC 3339 text in UTC (sqlx's chrono encoding).
-- Secret values are never stored here: only ids, public material and one-way fingerprints.

CREATE TABLE sources (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_scan_id INTEGER
);

CREATE TABLE scans (
    id          INTEGER PRIMARY KEY,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    -- running | completed | failed
    status      TEXT NOT NULL
);

-- One row per source a scan looked at: did its inventory succeed, and what did it find.
CREATE TABLE scan_sources (
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    source      TEXT NOT NULL,
    -- completed | failed
    status      TEXT NOT NULL,
    error       TEXT,
    credentials INTEGER NOT NULL DEFAULT 0,
    new_credentials INTEGER NOT NULL DEFAULT 0,
    changed_credentials INTEGER NOT NULL DEFAULT 0,
    gone_credentials INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scan_id, source)
);

-- Records a connector could not read; the scan went on without them.
CREATE TABLE scan_errors (
    id          INTEGER PRIMARY KEY,
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    source      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX scan_errors_scan ON scan_errors(scan_id);

CREATE TABLE identities (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    owner       TEXT,
    -- The whole identity as JSON (tags, purpose, ...).
    data        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    gone_at     TEXT,
    last_scan_id INTEGER NOT NULL,
    UNIQUE (source, external_id)
);

-- Current state of every credential ever seen.
CREATE TABLE credentials (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    identity_external_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    -- active | inactive | revoked | gone
    status      TEXT NOT NULL,
    created_at  TEXT,
    expires_at  TEXT,
    last_used_at TEXT,
    owner       TEXT,
    -- The whole credential as the connector last reported it, as JSON.
    data        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    gone_at     TEXT,
    last_scan_id INTEGER NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX credentials_status ON credentials(status);

-- One-way fingerprints, to match credentials against leak reports and signatures later.
CREATE TABLE fingerprints (
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    algorithm   TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (credential_id, algorithm, value)
);
CREATE INDEX fingerprints_value ON fingerprints(value);

-- Every change of a credential: first seen, status, last use, owner, expiry, gone, back.
CREATE TABLE credential_history (
    id          INTEGER PRIMARY KEY,
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    scan_id     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    -- first_seen | status | last_used | owner | expires_at | gone | reappeared
    change      TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT
);
CREATE INDEX credential_history_credential ON credential_history(credential_id);

-- One policy violation on one credential; the dedup key is (source, credential, policy).
CREATE TABLE findings (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    credential_external_id TEXT NOT NULL,
    policy_id   TEXT NOT NULL,
    severity    TEXT NOT NULL,
    -- open | acknowledged | suppressed | resolved
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    resolved_at TEXT,
    suppressed_until TEXT,
    suppressed_by TEXT,
    suppress_reason TEXT,
    UNIQUE (source, credential_external_id, policy_id)
);
CREATE INDEX findings_status ON findings(status);

-- The audit log: append-only, each row holds the hash of the one before.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
