-- The audit chain is keyed (HMAC-SHA256 under a key kept outside the database). A store whose log
-- was written unkeyed keeps those events, 1..legacy_through, as plain SHA-256 links; the next event
-- is the keyed `audit.keyed` marker that commits to their head (written when the store is next
-- opened with its key). A fresh store has no legacy events.
CREATE TABLE audit_meta (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    legacy_through  INTEGER NOT NULL,
    -- The id of the key the chain is keyed with (a MAC of a constant, not the key): another key is
    -- refused instead of forking the chain.
    key_id          TEXT
);
INSERT INTO audit_meta (id, legacy_through) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
