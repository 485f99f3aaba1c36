-- `actions_due (status, next_at)` serves every look-up by status; the older index on status alone
-- let the planner read every waiting action to find the due ones.
DROP INDEX IF EXISTS actions_status;

-- Actions and enforcement find a credential by its external id alone (`find_credential`): once per
-- finding an enforcing or dry-run policy acts on, so without this index a scan read the whole
-- table once per such finding.
CREATE INDEX IF NOT EXISTS credentials_external_id ON credentials(external_id);
