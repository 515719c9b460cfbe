-- Haul database, version 7 (SQLite): a queued job's earliest start (a retry's backoff) is kept
-- with the job, so another daemon that takes a waiting job over respects it
-- (docs/architecture.md#several-daemons). Touches only the Job table.
ALTER TABLE "Job" ADD COLUMN "notBefore" DATETIME;
