-- The signers each credential can make signatures with by its source's own access rules (a Vault
-- token whose policies allow `transit/sign/<key>`): its `signs_with`, by key id, so the holders
-- of a signer are found without reading every credential. Rewritten with the credential.
CREATE TABLE signing_power (
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    key_id      TEXT NOT NULL,
    PRIMARY KEY (credential_id, key_id)
);
CREATE INDEX signing_power_key ON signing_power(key_id);
