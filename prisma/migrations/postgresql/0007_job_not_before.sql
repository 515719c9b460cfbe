-- Haul database, version 7 (PostgreSQL): a queued job's earliest start (a retry's backoff) is kept
-- with the job, so another daemon that takes a waiting job over respects it
-- (docs/architecture.md#several-daemons). Touches only the Job table.
ALTER TABLE "Job" ADD COLUMN "notBefore" TIMESTAMP(3);
-- What an idle daemon looks for: queued jobs nobody has claimed, oldest first.
CREATE INDEX "Job_waiting_unclaimed" ON "Job"("queuedAt") WHERE "state" = 'queued' AND "claimedAt" IS NULL;
