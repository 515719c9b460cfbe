// Console sessions. The browser holds a random secret in an HttpOnly cookie; the database holds
// only its SHA-256, so a copy of the database logs nobody in. A session ends at a fixed lifetime,
// after an idle period, at logout, or when its user is disabled or removed. Each session has its
// own CSRF token, which the browser must echo in a header on every state-changing request.
import { createHash, randomBytes } from 'node:crypto';
import type { Database } from './open-database.js';
import { toUserView, withGrants, type UserView } from './users.js';

export interface SessionPolicy {
  lifetimeMs: number;
  idleMs: number;
  /** lastSeenAt is written at most this often, not on every request. */
  touchEveryMs: number;
}

export const defaultSessionPolicy: SessionPolicy = { lifetimeMs: 12 * 3600_000, idleMs: 30 * 60_000, touchEveryMs: 60_000 };

export interface NewSession {
  /** The cookie value; shown once, never stored. */
  secret: string;
  csrfToken: string;
  expiresAt: Date;
}

export interface ActiveSession {
  /** SHA-256 of the secret: the row's key, safe to log. */
  id: string;
  user: UserView;
  csrfToken: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
}

/** 32 random bytes, base64url: the shape of every session secret (and CSRF token). */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export function sessionId(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export class SessionStore {
  readonly policy: SessionPolicy;
  private readonly now: () => Date;

  constructor(private readonly db: Database, options: { policy?: Partial<SessionPolicy>; now?: () => Date } = {}) {
    this.policy = { ...defaultSessionPolicy, ...options.policy };
    this.now = options.now ?? (() => new Date());
  }

  async create(userId: number): Promise<NewSession> {
    const secret = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    const now = this.now();
    const expiresAt = new Date(now.getTime() + this.policy.lifetimeMs);
    await this.db.prisma.session.create({ data: { id: sessionId(secret), userId, csrfToken, createdAt: now, lastSeenAt: now, expiresAt } });
    return { secret, csrfToken, expiresAt };
  }

  /** The live session a cookie names, or undefined (and an expired one is deleted). */
  async authenticate(secret: string | undefined): Promise<ActiveSession | undefined> {
    if (secret === undefined || !SECRET_PATTERN.test(secret)) return undefined;
    const id = sessionId(secret);
    const row = await this.db.prisma.session.findUnique({ where: { id }, include: { user: { include: withGrants } } });
    if (!row) return undefined;
    const now = this.now();
    const idleSince = now.getTime() - row.lastSeenAt.getTime();
    if (row.expiresAt <= now || idleSince >= this.policy.idleMs || row.user.disabled) {
      await this.db.prisma.session.deleteMany({ where: { id } });
      return undefined;
    }
    let lastSeenAt = row.lastSeenAt;
    if (idleSince >= this.policy.touchEveryMs) {
      lastSeenAt = now;
      await this.db.prisma.session.updateMany({ where: { id }, data: { lastSeenAt } });
    }
    return { id, user: toUserView(row.user, now), csrfToken: row.csrfToken, createdAt: row.createdAt, lastSeenAt, expiresAt: row.expiresAt };
  }

  async revoke(secret: string): Promise<void> {
    await this.db.prisma.session.deleteMany({ where: { id: sessionId(secret) } });
  }

  /** Ends every session of a user (password reset, disabled), except optionally the caller's. */
  async revokeAllOf(userId: number, except?: string): Promise<number> {
    const r = await this.db.prisma.session.deleteMany({ where: { userId, ...(except ? { id: { not: sessionId(except) } } : {}) } });
    return r.count;
  }

  async purgeExpired(): Promise<number> {
    const now = this.now();
    const r = await this.db.prisma.session.deleteMany({
      where: { OR: [{ expiresAt: { lte: now } }, { lastSeenAt: { lte: new Date(now.getTime() - this.policy.idleMs) } }] },
    });
    return r.count;
  }
}
