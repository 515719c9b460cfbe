-- Haul database, version 3 (SQLite): several daemons (docs/architecture.md#several-daemons).
-- Stands alone: it touches only what version 1 created, so it applies after any version 2.

-- One row per running daemon; its lease is renewed by a heartbeat. A row whose lease expired
-- belongs to a dead daemon: another daemon takes its jobs over. SQLite serves one daemon.
CREATE TABLE "FleetDaemon" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "hostname" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "startedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "heartbeatAt" DATETIME NOT NULL,
    "leaseExpiresAt" DATETIME NOT NULL
);

-- A schedule slot fires once fleet-wide: whichever daemon inserts (clientId, slot) first queues it.
CREATE TABLE "ScheduleSlot" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "clientId" INTEGER NOT NULL,
    "slot" DATETIME NOT NULL,
    "daemonId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ScheduleSlot_clientId_fkey" FOREIGN KEY ("clientId") REFERENCES "Client" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "ScheduleSlot_clientId_slot_key" ON "ScheduleSlot"("clientId", "slot");

-- When a daemon claimed the job to run it (Job.daemonId is that daemon).
ALTER TABLE "Job" ADD COLUMN "claimedAt" DATETIME;
-- The database's own guarantee that a client never has two claimed, unfinished jobs, whichever
-- daemons claimed them (Prisma cannot describe a partial index; it lives only here).
CREATE UNIQUE INDEX "Job_one_claimed_per_client" ON "Job"("clientId")
    WHERE "claimedAt" IS NOT NULL AND "state" NOT IN ('succeeded', 'failed', 'cancelled');
