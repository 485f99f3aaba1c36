-- The trust records of signers, by key id (lower-hex SHA-256 of the DER SubjectPublicKeyInfo).
-- Signers themselves are read from the ledger (credentials with a `sha256_spki` fingerprint);
-- only their distrust periods, which the ledger cannot show, are kept here, and kept after the
-- signer's credentials are gone (what was signed inside a period still proves nothing).
CREATE TABLE signer_trust (
    key_id      TEXT PRIMARY KEY,
    -- When the signer was trusted from when the record was last changed.
    valid_from  TEXT NOT NULL,
    -- JSON list of distrust periods (`crate::trust::DistrustPeriod`).
    periods     TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;
