-- Every index is paid for by every credential a scan writes; these served no query, or served it
-- from the table when the index alone would do.

-- No query filters credentials on their status alone (each one is `status != 'gone'` within a
-- source or an identity, read through the indexes on those).
DROP INDEX IF EXISTS credentials_status;
-- Likewise findings: by status only as `status != 'resolved'`, within a source or by id.
DROP INDEX IF EXISTS findings_status;

-- The identity counts (one active access key per user) read only the kind and status of an
-- identity's credentials: with both in the index, from the index alone.
DROP INDEX IF EXISTS credentials_identity;
CREATE INDEX credentials_identity ON credentials(source, identity_external_id, status, kind);

-- Fingerprints are read by credential, never by a row id: without one, a fingerprint is one
-- B-tree entry instead of two. The index on the value alone is dropped: its keys are random
-- digests, so each batch rewrote most of its pages (a quarter of a first scan's recording time).
-- Matching a leak report or a signature against fingerprints reads them in one pass per report.
CREATE TABLE fingerprints_keyed (
    credential_id INTEGER NOT NULL REFERENCES credentials(id),
    algorithm   TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (credential_id, algorithm, value)
) WITHOUT ROWID;
INSERT INTO fingerprints_keyed (credential_id, algorithm, value)
    SELECT credential_id, algorithm, value FROM fingerprints;
DROP TABLE fingerprints;
ALTER TABLE fingerprints_keyed RENAME TO fingerprints;
