-- `actions_due (status, next_at)` serves every look-up by status; the older index on status alone
-- let the planner read every waiting action to find the due ones.
DROP INDEX IF EXISTS actions_status;
