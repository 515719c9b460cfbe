-- Haul database, version 6 (SQLite): one console for several daemons, maintenance once per slot
-- fleet-wide (docs/architecture.md#several-daemons). Touches only what versions 3 to 5 created.

-- Where consoles reach each daemon's bus (haul web --fleet reads it).
ALTER TABLE "FleetDaemon" ADD COLUMN "busEndpoint" TEXT;

-- A check or prune slot fires once fleet-wide: whichever daemon inserts (kind, slot) first queues it.
CREATE TABLE "MaintenanceSlot" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "kind" TEXT NOT NULL,
    "slot" DATETIME NOT NULL,
    "daemonId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX "MaintenanceSlot_kind_slot_key" ON "MaintenanceSlot"("kind", "slot");
