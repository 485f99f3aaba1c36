-- The last scan that observed each finding: findings of an evaluated source that this scan did not
-- observe are resolved in one step, without holding every finding in memory.
ALTER TABLE findings ADD COLUMN last_scan_id INTEGER;
CREATE INDEX findings_source_status ON findings(source, status);
