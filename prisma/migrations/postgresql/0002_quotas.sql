-- Placeholder for version 2 (per-client quotas), which another branch adds: the migration step
-- needs consecutive versions, and 0003_fleet must not depend on it. Take that branch's file on merge.
SELECT 1;
