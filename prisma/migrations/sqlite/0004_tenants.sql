-- Haul database, version 4 (SQLite): tenants and per-tenant roles (docs/security.md, Tenants).
-- Every client moves into the tenant "default" (ID 1); every operator or auditor keeps working
-- with that role on it; admins stay global.

CREATE TABLE "Tenant" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" TEXT NOT NULL,
    "quotaBytes" BIGINT,
    "retention" TEXT,
    "notifyEmails" TEXT NOT NULL DEFAULT '[]',
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
);
CREATE UNIQUE INDEX "Tenant_name_key" ON "Tenant"("name");
INSERT INTO "Tenant" ("id", "name", "updatedAt") VALUES (1, 'default', CURRENT_TIMESTAMP);

CREATE TABLE "TenantGrant" (
    "userId" INTEGER NOT NULL,
    "tenantId" INTEGER NOT NULL,
    "role" TEXT NOT NULL,
    PRIMARY KEY ("userId", "tenantId"),
    CONSTRAINT "TenantGrant_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "TenantGrant_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "TenantGrant_tenantId_idx" ON "TenantGrant"("tenantId");
INSERT INTO "TenantGrant" ("userId", "tenantId", "role") SELECT "id", 1, "role" FROM "User" WHERE "role" IN ('operator', 'auditor');
UPDATE "User" SET "role" = 'member' WHERE "role" <> 'admin';

-- SQLite cannot add a REFERENCES column with a non-NULL default to an existing table, so the
-- link to "Tenant" is kept by Haul (a tenant with clients cannot be removed) and by this trigger.
ALTER TABLE "Client" ADD COLUMN "tenantId" INTEGER NOT NULL DEFAULT 1;
CREATE INDEX "Client_tenantId_idx" ON "Client"("tenantId");
CREATE TRIGGER "Client_tenantId_exists_insert" BEFORE INSERT ON "Client"
    WHEN NOT EXISTS (SELECT 1 FROM "Tenant" WHERE "id" = NEW."tenantId")
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: Client.tenantId'); END;
CREATE TRIGGER "Client_tenantId_exists_update" BEFORE UPDATE OF "tenantId" ON "Client"
    WHEN NOT EXISTS (SELECT 1 FROM "Tenant" WHERE "id" = NEW."tenantId")
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: Client.tenantId'); END;
CREATE TRIGGER "Tenant_in_use_delete" BEFORE DELETE ON "Tenant"
    WHEN EXISTS (SELECT 1 FROM "Client" WHERE "tenantId" = OLD."id")
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: Tenant has clients'); END;

ALTER TABLE "AuditEntry" ADD COLUMN "tenantId" INTEGER;
CREATE INDEX "AuditEntry_tenantId_id_idx" ON "AuditEntry"("tenantId", "id");
