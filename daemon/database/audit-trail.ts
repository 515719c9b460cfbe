// The audit trail: who did what, when. Tamper-evident: each entry's hash is SHA-256 over the
// previous entry's hash and the canonical JSON of the entry, so changing or removing an entry
// breaks the chain at that point and `verify()` names it. Appends are serialised under a database
// lock (an advisory lock on PostgreSQL, the write lock on SQLite), so two processes appending at
// once (the web server and the CLI, or several daemons) never fork the chain.
import { createHash } from 'node:crypto';
import type { Database } from './open-database.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditRecord {
  /** A console user name, or `cli:<unix user>` for the command line. */
  actor: string;
  /** Dotted verb, e.g. `user.add`, `login.failed`, `job.run`. */
  action: string;
  target?: string | null;
  detail?: Record<string, unknown>;
  /** The tenant the action concerns; its auditors see the entry. Absent: a global entry, for admins only. */
  tenantId?: number | null;
}

export interface AuditEntryView {
  id: number;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  detail: Record<string, unknown>;
  prevHash: string;
  hash: string;
  tenantId: number | null;
}

export type AuditVerification =
  | { ok: true; entries: number; /** The newest hash: record it elsewhere to detect a rewrite of the whole chain. */ head: string }
  | { ok: false; entries: number; brokenId: number; message: string };

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** JSON with object keys sorted at every level and no whitespace: one text per value. */
export function canonicalJson(value: unknown): string {
  const normal = (v: unknown): Json => {
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Date) return v.toISOString();
    if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : normal(x)));
    if (typeof v === 'object') {
      const out: { [key: string]: Json } = {};
      for (const key of Object.keys(v as object).sort()) {
        const x = (v as Record<string, unknown>)[key];
        if (x !== undefined) out[key] = normal(x);
      }
      return out;
    }
    return null;
  };
  return JSON.stringify(normal(value));
}

/** The tenant is covered only when set, so entries written before tenants existed keep their hashes. */
export function auditEntryHash(prevHash: string, entry: { at: Date; actor: string; action: string; target: string | null; detail: unknown; tenantId?: number | null }): string {
  const body = canonicalJson({ at: entry.at, actor: entry.actor, action: entry.action, target: entry.target, detail: entry.detail, tenant: entry.tenantId ?? undefined });
  return createHash('sha256').update(`${prevHash}\n${body}`).digest('hex');
}

// Any fixed number; every Haul process sharing the PostgreSQL database uses the same one.
const PG_AUDIT_LOCK = 0x48415544;
const VERIFY_BATCH = 1000;

interface EntryRow {
  id: number;
  at: Date;
  actor: string;
  action: string;
  target: string | null;
  detail: string;
  prevHash: string;
  hash: string;
  tenantId: number | null;
}

function parseDetail(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function toView(row: EntryRow): AuditEntryView {
  return { ...row, detail: parseDetail(row.detail) ?? { unreadable: row.detail } };
}

export class AuditTrail {
  private readonly now: () => Date;

  constructor(private readonly db: Database, options: { now?: () => Date } = {}) {
    this.now = options.now ?? (() => new Date());
  }

  async append(record: AuditRecord): Promise<AuditEntryView> {
    const detail = JSON.parse(canonicalJson(record.detail ?? {})) as Record<string, unknown>;
    const target = record.target ?? null;
    const tenantId = record.tenantId ?? null;
    const row = await this.db.prisma.$transaction(async (tx) => {
      if (this.db.location.provider === 'postgresql') {
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${PG_AUDIT_LOCK})`);
      } else {
        // Prisma opens SQLite transactions DEFERRED: a write as the first statement takes the
        // write lock before the newest entry is read, so no other process can append meanwhile.
        await tx.$executeRawUnsafe('UPDATE "AuditEntry" SET "id" = "id" WHERE 0');
      }
      const last = await tx.auditEntry.findFirst({ orderBy: { id: 'desc' }, select: { hash: true } });
      const prevHash = last?.hash ?? GENESIS_HASH;
      const at = this.now();
      const hash = auditEntryHash(prevHash, { at, actor: record.actor, action: record.action, target, detail, tenantId });
      return tx.auditEntry.create({ data: { at, actor: record.actor, action: record.action, target, detail: canonicalJson(detail), prevHash, hash, tenantId } });
    }, { maxWait: 15_000, timeout: 30_000 });
    return toView(row);
  }

  /** Newest first; `beforeId` pages backwards; `tenantIds` keeps only those tenants' entries (no global ones). */
  async list(options: { limit?: number; beforeId?: number; tenantIds?: number[] } = {}): Promise<AuditEntryView[]> {
    const rows = await this.db.prisma.auditEntry.findMany({
      where: {
        ...(options.beforeId === undefined ? {} : { id: { lt: options.beforeId } }),
        ...(options.tenantIds === undefined ? {} : { tenantId: { in: options.tenantIds } }),
      },
      orderBy: { id: 'desc' },
      take: Math.min(Math.max(options.limit ?? 100, 1), 1000),
    });
    return rows.map(toView);
  }

  async count(options: { tenantIds?: number[] } = {}): Promise<number> {
    return this.db.prisma.auditEntry.count({ where: options.tenantIds === undefined ? {} : { tenantId: { in: options.tenantIds } } });
  }

  /**
   * Walks the whole chain from the start and names the first entry that breaks it. Someone who can
   * write to the database could rewrite every hash after a change; `anchor`, a hash recorded
   * elsewhere earlier, must still be in the chain, which such a rewrite cannot arrange.
   */
  async verify(options: { anchor?: string } = {}): Promise<AuditVerification> {
    const result = await this.verifyChain();
    if (!result.ok || options.anchor === undefined) return result;
    const anchored = await this.db.prisma.auditEntry.findUnique({ where: { hash: options.anchor.toLowerCase() }, select: { id: true } });
    if (anchored) return result;
    return {
      ok: false, entries: result.entries, brokenId: 0,
      message: `no audit entry has the hash ${options.anchor}, which you recorded earlier: the chain is intact in itself but was rewritten or cut short since then. Restore the database from a backup to see the original entries, and find out who could write to it.`,
    };
  }

  private async verifyChain(): Promise<AuditVerification> {
    let expectedPrev = GENESIS_HASH;
    let previousId: number | undefined;
    let entries = 0;
    const restore = 'Restore the database from a backup to see the original entries, and find out who could write to it.';
    while (true) {
      const batch = await this.db.prisma.auditEntry.findMany({
        where: previousId === undefined ? {} : { id: { gt: previousId } },
        orderBy: { id: 'asc' },
        take: VERIFY_BATCH,
      });
      for (const row of batch) {
        if (row.prevHash !== expectedPrev) {
          const message = previousId === undefined
            ? `audit entry #${row.id} does not start the chain: its previous hash is not the genesis hash, so the entries before it were removed. ${restore}`
            : `audit entry #${row.id} does not follow #${previousId}: it records a different previous hash, so an entry between them was removed or #${previousId} was rewritten. ${restore}`;
          return { ok: false, entries, brokenId: row.id, message };
        }
        const detail = parseDetail(row.detail);
        if (!detail || auditEntryHash(row.prevHash, { ...row, detail }) !== row.hash) {
          const message = `audit entry #${row.id} (${row.at.toISOString()} ${row.actor} ${row.action}) does not match its hash: it was changed after it was written. ${restore}`;
          return { ok: false, entries, brokenId: row.id, message };
        }
        expectedPrev = row.hash;
        previousId = row.id;
        entries += 1;
      }
      if (batch.length < VERIFY_BATCH) return { ok: true, entries, head: expectedPrev };
    }
  }
}
