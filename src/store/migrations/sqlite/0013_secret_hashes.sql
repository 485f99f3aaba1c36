-- One-way hashes of secrets keywarden itself created (a rotation's new key), recorded at creation
-- while the secret is in memory, so a leak report that carries only a hash of the secret
-- (detect-secrets `hashed_secret`, GitGuardian `hmsl_hash`) is matched. Never the secret.
CREATE TABLE secret_hashes (
    source      TEXT NOT NULL,
    credential_external_id TEXT NOT NULL,
    -- `sha1` | `hmsl`
    algorithm   TEXT NOT NULL,
    value       TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (source, credential_external_id, algorithm)
);
CREATE INDEX secret_hashes_value ON secret_hashes(algorithm, value);
