-- Haul database, version 4 (PostgreSQL): tenants and per-tenant roles (docs/security.md, Tenants).
-- Every client moves into the tenant "default" (ID 1); every operator or auditor keeps working
-- with that role on it; admins stay global.

CREATE TABLE "Tenant" (
    "id" SERIAL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "quotaBytes" BIGINT,
    "retention" TEXT,
    "notifyEmails" TEXT NOT NULL DEFAULT '[]',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL
);
CREATE UNIQUE INDEX "Tenant_name_key" ON "Tenant"("name");
INSERT INTO "Tenant" ("id", "name", "updatedAt") VALUES (1, 'default', CURRENT_TIMESTAMP);
SELECT setval(pg_get_serial_sequence('"Tenant"', 'id'), 1);

CREATE TABLE "TenantGrant" (
    "userId" INTEGER NOT NULL,
    "tenantId" INTEGER NOT NULL,
    "role" TEXT NOT NULL,
    PRIMARY KEY ("userId", "tenantId"),
    CONSTRAINT "TenantGrant_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "TenantGrant_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "TenantGrant_tenantId_idx" ON "TenantGrant"("tenantId");
INSERT INTO "TenantGrant" ("userId", "tenantId", "role") SELECT "id", 1, "role" FROM "User" WHERE "role" IN ('operator', 'auditor');
UPDATE "User" SET "role" = 'member' WHERE "role" <> 'admin';

ALTER TABLE "Client" ADD COLUMN "tenantId" INTEGER NOT NULL DEFAULT 1;
ALTER TABLE "Client" ADD CONSTRAINT "Client_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenant"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
CREATE INDEX "Client_tenantId_idx" ON "Client"("tenantId");

ALTER TABLE "AuditEntry" ADD COLUMN "tenantId" INTEGER;
CREATE INDEX "AuditEntry_tenantId_id_idx" ON "AuditEntry"("tenantId", "id");
