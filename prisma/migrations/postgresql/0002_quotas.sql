-- Per-client quota and overdue threshold, the client's stored bytes (chunks it uploaded first,
-- see docs/operations.md#quotas), and per-job statistics (bytes stored, duration).
ALTER TABLE "Client" ADD COLUMN "quotaBytes" BIGINT;
ALTER TABLE "Client" ADD COLUMN "overdueHours" INTEGER;
ALTER TABLE "Client" ADD COLUMN "storedBytes" BIGINT NOT NULL DEFAULT 0;
ALTER TABLE "Client" ADD COLUMN "storedBytesAt" TIMESTAMP(3);
ALTER TABLE "Job" ADD COLUMN "bytesStored" BIGINT NOT NULL DEFAULT 0;
ALTER TABLE "Job" ADD COLUMN "durationMs" INTEGER;
CREATE INDEX "Job_kind_finishedAt_idx" ON "Job"("kind", "finishedAt");
