-- Haul database, version 5 (SQLite): directory logins and the second factor (docs/security.md).
-- Stands alone: it touches only what version 1 created, so it applies after any version 4.

-- 'local' (argon2id password here) or 'directory' (password checked by LDAP; no local hash).
ALTER TABLE "User" ADD COLUMN "source" TEXT NOT NULL DEFAULT 'local';
-- A TOTP secret shown to the user but not yet confirmed with a code (encrypted like totpSecret).
ALTER TABLE "User" ADD COLUMN "totpPendingSecret" TEXT;
-- The last TOTP time step accepted: a code of that step or an earlier one is refused (replay).
ALTER TABLE "User" ADD COLUMN "totpLastStep" INTEGER;

-- One-time recovery codes for a lost authenticator: argon2id hashes, spent when used.
CREATE TABLE "RecoveryCode" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "userId" INTEGER NOT NULL,
    "codeHash" TEXT NOT NULL,
    "usedAt" DATETIME,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "RecoveryCode_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "RecoveryCode_userId_idx" ON "RecoveryCode"("userId");
