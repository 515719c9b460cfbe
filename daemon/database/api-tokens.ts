// API tokens for automation: `Authorization: Bearer haul_…`. The token is shown once; the
// database keeps its SHA-256. A token acts with a role its user covers (never more), stops
// working when revoked, when its user is disabled or removed, or when the user's roles no longer
// cover it. A member's token reaches only the tenants where its user holds the token's role
// (web/server/tenant-scope.ts).
import { createHash, randomBytes } from 'node:crypto';
import { HaulError } from '../../shared/errors.js';
import { isRole, type Role } from '../../shared/roles.js';
import type { Database } from './open-database.js';
import { holdsRole, toUserView, withGrants, type UserView } from './users.js';

export interface ApiTokenView {
  id: number;
  userId: number;
  username: string;
  name: string;
  role: Role;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface TokenAuthentication {
  user: UserView;
  /** The role requests made with this token act with. */
  role: Role;
  tokenId: number;
  tokenName: string;
}

const TOKEN_PATTERN = /^haul_[A-Za-z0-9_-]{43}$/;
const TOUCH_EVERY_MS = 60_000;

function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

interface TokenRow {
  id: number;
  userId: number;
  name: string;
  role: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  user: { username: string };
}

function toView(row: TokenRow): ApiTokenView {
  return {
    id: row.id, userId: row.userId, username: row.user.username, name: row.name, role: isRole(row.role) ? row.role : 'auditor',
    createdAt: row.createdAt, lastUsedAt: row.lastUsedAt, revokedAt: row.revokedAt,
  };
}

export class ApiTokenStore {
  private readonly now: () => Date;

  constructor(private readonly db: Database, options: { now?: () => Date } = {}) {
    this.now = options.now ?? (() => new Date());
  }

  async create(user: UserView, name: string, role: string): Promise<{ token: string; view: ApiTokenView }> {
    if (name.trim() === '' || name.length > 64 || /\p{Cc}/u.test(name)) {
      throw new HaulError('InvalidArgument', 'name the token with 1 to 64 characters without control characters (for example the script that uses it).');
    }
    if (!isRole(role)) throw new HaulError('InvalidArgument', `${JSON.stringify(role)} is not a role; use admin, operator or auditor.`);
    if (!holdsRole(user, role)) {
      throw new HaulError('Forbidden', `as ${user.role} you cannot create a token with role ${role}: a token never has rights its user lacks. Create it with role ${user.role}.`);
    }
    const token = `haul_${randomBytes(32).toString('base64url')}`;
    const row = await this.db.prisma.apiToken.create({
      data: { userId: user.id, name, role, tokenHash: tokenHash(token), createdAt: this.now() },
      include: { user: { select: { username: true } } },
    });
    return { token, view: toView(row) };
  }

  /** Tokens of one user, or of everyone; newest first, revoked ones included. */
  async list(userId?: number): Promise<ApiTokenView[]> {
    const rows = await this.db.prisma.apiToken.findMany({
      where: userId === undefined ? {} : { userId },
      orderBy: { id: 'desc' },
      include: { user: { select: { username: true } } },
    });
    return rows.map(toView);
  }

  /** Revokes a token; only its owner or (with `anyUser`) an admin may. */
  async revoke(id: number, by: { userId: number; anyUser: boolean }): Promise<ApiTokenView> {
    const row = await this.db.prisma.apiToken.findUnique({ where: { id }, include: { user: { select: { username: true } } } });
    if (!row || (!by.anyUser && row.userId !== by.userId)) {
      throw new HaulError('TokenNotFound', `there is no API token ${id} of yours; the token list shows their numbers.`);
    }
    if (row.revokedAt) return toView(row);
    return toView(await this.db.prisma.apiToken.update({ where: { id }, data: { revokedAt: this.now() }, include: { user: { select: { username: true } } } }));
  }

  async authenticate(token: string): Promise<TokenAuthentication | undefined> {
    if (!TOKEN_PATTERN.test(token)) return undefined;
    const row = await this.db.prisma.apiToken.findUnique({ where: { tokenHash: tokenHash(token) }, include: { user: { include: withGrants } } });
    if (!row || row.revokedAt || row.user.disabled) return undefined;
    const now = this.now();
    const user = toUserView(row.user, now);
    if (!isRole(row.role) || !holdsRole(user, row.role)) return undefined;
    if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() >= TOUCH_EVERY_MS) {
      await this.db.prisma.apiToken.updateMany({ where: { id: row.id }, data: { lastUsedAt: now } });
    }
    return { user, role: row.role, tokenId: row.id, tokenName: row.name };
  }
}
