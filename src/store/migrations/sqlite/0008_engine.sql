-- The action engine: playbooks (a parent with ordered children), attempts, approvals, and
-- per-identity scan errors so enforcement can leave alone what a scan could not read.

-- A child of a playbook names its parent and its place in the playbook's order.
ALTER TABLE actions ADD COLUMN parent_id INTEGER REFERENCES actions(id);
ALTER TABLE actions ADD COLUMN child_index INTEGER;
-- 1: the action holds its credential's one open slot (rotate, disable, ...); 0: a playbook parent,
-- whose children hold the slot while they run.
ALTER TABLE actions ADD COLUMN exclusive INTEGER NOT NULL DEFAULT 1;
-- How often the action was retried after failing (by policy back-off or `actions retry`).
ALTER TABLE actions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

-- Open: running, waiting, awaiting_approval. At most one open exclusive action per credential.
DROP INDEX actions_one_open;
CREATE UNIQUE INDEX actions_one_open ON actions(source, credential_external_id)
    WHERE exclusive = 1 AND status IN ('running', 'waiting', 'awaiting_approval');
-- `actions resume` finds the due ones among many finished ones by (status, next_at).
CREATE INDEX actions_due ON actions(status, next_at);
CREATE INDEX actions_credential ON actions(source, credential_external_id);
CREATE UNIQUE INDEX actions_children ON actions(parent_id, child_index) WHERE parent_id IS NOT NULL;

-- The identity a scan error left unread, when the connector can tell.
ALTER TABLE scan_errors ADD COLUMN identity TEXT;

-- Findings keywarden raises itself (an enforcement halt, a containment), not a policy's: a scan
-- that does not observe them does not resolve them.
ALTER TABLE findings ADD COLUMN raised INTEGER NOT NULL DEFAULT 0;
