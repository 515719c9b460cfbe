// Console accounts: argon2id password hashes, roles, lockout after repeated failures, an optional
// TOTP second factor with recovery codes, and accounts whose password the directory (LDAP)
// checks. The web server and `haul user` both work through this store.
import { randomInt } from 'node:crypto';
import argon2 from 'argon2';
import { HaulError } from '../../shared/errors.js';
import { isRole, type Role, ROLES } from '../../shared/roles.js';
import { generateTotpSecret, matchTotp } from '../../shared/totp.js';
import type { Database } from './open-database.js';
import { DEFAULT_TENANT_ID, tenantNotFound, type TenantGrantView, type TenantRole } from './tenants.js';
import { SecretBox } from './secret-box.js';

export type AccountSource = 'local' | 'directory';

export interface UserView {
  id: number;
  username: string;
  /**
   * admin: global. Otherwise the member's roles are its grants, and this is the one to show for
   * it: operator when it operates any tenant, else auditor.
   */
  role: Role;
  /** A member's role per tenant; empty for an admin (who holds every role on every tenant). */
  grants: TenantGrantView[];
  /** Where the password is checked: here (argon2id) or in the directory (LDAP). */
  source: AccountSource;
  disabled: boolean;
  /** Set while failed logins keep the account closed. */
  lockedUntil: Date | null;
  totp: boolean;
  mustChangePassword: boolean;
  failedLogins: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface AccountPolicy {
  /** Consecutive failed logins (wrong password or code) that lock the account. */
  maxFailedLogins: number;
  lockoutMs: number;
}

export const defaultAccountPolicy: AccountPolicy = { maxFailedLogins: 5, lockoutMs: 15 * 60_000 };

export type LoginResult =
  | { ok: true; user: UserView }
  | { ok: false; reason: 'wrong-password'; user?: UserView; lockedNow?: Date }
  | { ok: false; reason: 'locked'; user: UserView; lockedUntil: Date }
  | { ok: false; reason: 'disabled'; user: UserView }
  | { ok: false; reason: 'totp-required'; user: UserView }
  | { ok: false; reason: 'totp-wrong'; user: UserView; lockedNow?: Date }
  | { ok: false; reason: 'directory-account'; user: UserView };

/** How a successful login passed the second factor, for the audit trail. */
export type SecondFactorUsed = 'none' | 'totp' | 'recovery-code';

export const RECOVERY_CODE_COUNT = 10;
/** Two groups of five from the one-time password alphabet: about 49 bits each. */
const RECOVERY_CODE_PATTERN = /^[a-z2-9]{5}-[a-z2-9]{5}$/;
const SECOND_FACTOR_ROLES_SETTING = 'secondFactorRoles';
/** Stored for directory accounts: not a PHC string, so no password can ever match it. */
const NO_LOCAL_PASSWORD = '!directory';

export interface PasswordHashCost {
  /** KiB of memory per hash. */
  memoryCost: number;
  timeCost: number;
}

// OWASP's second recommended argon2id setting (64 MiB, 2 passes, 1 lane): about 0.15 s here,
// slow enough to make guessing expensive, fast enough for a login form. Verification reads the
// cost from each stored hash, so raising it later keeps old passwords working.
export const defaultPasswordHashCost: PasswordHashCost = { memoryCost: 65536, timeCost: 2 };
export const MIN_PASSWORD_LENGTH = 12;
const MAX_PASSWORD_LENGTH = 1024;
const MAX_USERNAME_LENGTH = 64;
// No 0/o, 1/l/i: one-time passwords are read off a terminal and typed by hand.
const PASSWORD_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

interface GrantRow {
  tenantId: number;
  role: string;
  tenant: { name: string };
}

/** What every user query includes, so each UserView knows its grants. */
export const withGrants = { grants: { include: { tenant: { select: { name: true } } }, orderBy: { tenantId: 'asc' as const } } };

interface UserRow {
  id: number;
  username: string;
  passwordHash: string;
  role: string;
  grants?: GrantRow[];
  source: string;
  totpSecret: string | null;
  failedLogins: number;
  lockedUntil: Date | null;
  disabled: boolean;
  mustChangePassword: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export function toUserView(row: UserRow, now: Date): UserView {
  const grants: TenantGrantView[] = row.role === 'admin' ? [] : (row.grants ?? [])
    .filter((g) => g.role === 'operator' || g.role === 'auditor')
    .map((g) => ({ tenantId: g.tenantId, tenant: g.tenant.name, role: g.role as TenantRole }));
  return {
    id: row.id,
    username: row.username,
    role: row.role === 'admin' ? 'admin' : grants.some((g) => g.role === 'operator') ? 'operator' : 'auditor',
    grants,
    source: row.source === 'directory' ? 'directory' : 'local',
    disabled: row.disabled,
    lockedUntil: row.lockedUntil && row.lockedUntil > now ? row.lockedUntil : null,
    totp: row.totpSecret !== null,
    mustChangePassword: row.mustChangePassword,
    failedLogins: row.failedLogins,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** Whether the user holds `role` anywhere: an admin holds every role, a member its grants' roles. */
export function holdsRole(user: UserView, role: Role): boolean {
  return user.role === 'admin' || user.grants.some((g) => g.role === role);
}

function randomGroups(groups: number): string {
  const chars = Array.from({ length: groups * 5 }, () => PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)]);
  return Array.from({ length: groups }, (_, i) => chars.slice(i * 5, i * 5 + 5).join('')).join('-');
}

/** A one-time password: 20 characters (about 99 bits) in groups of five. */
export function generatePassword(): string {
  return randomGroups(4);
}

export function isRecoveryCode(text: string): boolean {
  return RECOVERY_CODE_PATTERN.test(text.trim().toLowerCase());
}

export function checkUsername(username: string): void {
  // `:` is reserved: audit entries name the CLI as `cli:<unix user>`, which no account may imitate.
  if (username.length === 0 || username.length > MAX_USERNAME_LENGTH || username !== username.trim() || /[\p{Cc}\p{Cf}:]/u.test(username)) {
    throw new HaulError('InvalidArgument', `${JSON.stringify(username)} is not a usable user name: use 1 to ${MAX_USERNAME_LENGTH} characters without control characters, colons or spaces at either end.`);
  }
}

export function checkPassword(password: string, username: string): void {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) throw new HaulError('InvalidArgument', `the password has ${length} characters; use at least ${MIN_PASSWORD_LENGTH} (a few unrelated words are easy to type and hard to guess).`);
  if (length > MAX_PASSWORD_LENGTH) throw new HaulError('InvalidArgument', `the password has ${length} characters; use at most ${MAX_PASSWORD_LENGTH}.`);
  if (password.toLowerCase() === username.toLowerCase()) throw new HaulError('InvalidArgument', 'the password is the user name; choose another.');
}

function checkRole(role: string): Role {
  if (!isRole(role)) throw new HaulError('InvalidArgument', `${JSON.stringify(role)} is not a role; use one of ${ROLES.join(', ')}.`);
  return role;
}

export class UserStore {
  readonly policy: AccountPolicy;
  private readonly now: () => Date;
  private readonly hashOptions: argon2.HashOptions;
  private dummyHash: Promise<string> | undefined;
  /** Seals TOTP secrets; only the console needs one (`haul user` only turns second factors off). */
  private readonly secrets: SecretBox | undefined;

  constructor(private readonly db: Database, options: { policy?: Partial<AccountPolicy>; now?: () => Date; hashCost?: PasswordHashCost; secrets?: SecretBox } = {}) {
    this.policy = { ...defaultAccountPolicy, ...options.policy };
    this.now = options.now ?? (() => new Date());
    this.hashOptions = { type: argon2.argon2id, parallelism: 1, ...(options.hashCost ?? defaultPasswordHashCost) };
    this.secrets = options.secrets;
  }

  private get secretBox(): SecretBox {
    if (!this.secrets) throw new HaulError('Internal', 'this process has no console key, so it cannot read or write TOTP secrets; use the web console.');
    return this.secrets;
  }

  private hash(password: string): Promise<string> {
    return argon2.hash(password, this.hashOptions);
  }

  private get prisma() {
    return this.db.prisma;
  }

  /** A new user; an operator or auditor gets that role on `tenant` (the default tenant unless named). */
  async create(input: { username: string; role: string; password?: string; tenant?: string }): Promise<{ user: UserView; password: string; generated: boolean }> {
    checkUsername(input.username);
    const role = checkRole(input.role);
    const tenantId = role === 'admin' ? undefined : await this.tenantId(input.tenant);
    const generated = input.password === undefined;
    const password = input.password ?? generatePassword();
    checkPassword(password, input.username);
    if (await this.prisma.user.findUnique({ where: { username: input.username }, select: { id: true } })) {
      throw new HaulError('UserExists', `a user named ${JSON.stringify(input.username)} already exists; choose another name, or change that user's password instead.`);
    }
    const row = await this.prisma.user.create({
      data: {
        username: input.username, role: role === 'admin' ? 'admin' : 'member', passwordHash: await this.hash(password), mustChangePassword: generated,
        ...(tenantId === undefined ? {} : { grants: { create: { tenantId, role } } }),
      },
      include: withGrants,
    }).catch((err: unknown) => {
      if (/Unique constraint/.test(String(err))) throw new HaulError('UserExists', `a user named ${JSON.stringify(input.username)} already exists; choose another name, or change that user's password instead.`);
      throw err;
    });
    return { user: toUserView(row, this.now()), password, generated };
  }

  async list(): Promise<UserView[]> {
    const now = this.now();
    return (await this.prisma.user.findMany({ orderBy: { username: 'asc' }, include: withGrants })).map((r) => toUserView(r, now));
  }

  async find(username: string): Promise<UserView | undefined> {
    const row = await this.prisma.user.findUnique({ where: { username }, include: withGrants });
    return row ? toUserView(row, this.now()) : undefined;
  }

  async get(username: string): Promise<UserView> {
    const user = await this.find(username);
    if (!user) throw new HaulError('UserNotFound', `there is no user named ${JSON.stringify(username)}; \`haul user list\` shows the users.`);
    return user;
  }

  async byId(id: number): Promise<UserView | undefined> {
    const row = await this.prisma.user.findUnique({ where: { id }, include: withGrants });
    return row ? toUserView(row, this.now()) : undefined;
  }

  async remove(username: string): Promise<void> {
    const user = await this.get(username);
    await this.keepAnAdmin(user, 'remove');
    await this.prisma.user.delete({ where: { id: user.id } });
  }

  /**
   * admin: global, its grants dropped. operator or auditor: a member with that role on every
   * tenant it has a grant on (on the default tenant when it has none); `haul user grant` is the
   * finer tool.
   */
  async setRole(username: string, role: string): Promise<UserView> {
    const user = await this.get(username);
    const wanted = checkRole(role);
    if (user.source === 'directory') {
      throw new HaulError('DirectoryAccount', `the role of ${JSON.stringify(username)} comes from its directory groups and is set again at each login; change its group membership or the console's group mapping instead.`);
    }
    if (wanted === 'admin') {
      await this.prisma.$transaction([
        this.prisma.tenantGrant.deleteMany({ where: { userId: user.id } }),
        this.prisma.user.update({ where: { id: user.id }, data: { role: 'admin' } }),
      ]);
    } else {
      await this.keepAnAdmin(user, `make ${wanted}`);
      const tenantIds = user.grants.length > 0 ? user.grants.map((g) => g.tenantId) : [DEFAULT_TENANT_ID];
      await this.prisma.$transaction([
        this.prisma.tenantGrant.deleteMany({ where: { userId: user.id } }),
        this.prisma.tenantGrant.createMany({ data: tenantIds.map((tenantId) => ({ userId: user.id, tenantId, role: wanted })) }),
        this.prisma.user.update({ where: { id: user.id }, data: { role: 'member' } }),
      ]);
    }
    return this.get(username);
  }

  private async tenantId(name: string | undefined): Promise<number> {
    if (name === undefined) return DEFAULT_TENANT_ID;
    const row = await this.prisma.tenant.findUnique({ where: { name }, select: { id: true } });
    if (!row) throw tenantNotFound(name);
    return row.id;
  }

  async setDisabled(username: string, disabled: boolean): Promise<UserView> {
    const user = await this.get(username);
    if (disabled) await this.keepAnAdmin(user, 'disable');
    return toUserView(await this.prisma.user.update({ where: { id: user.id }, data: { disabled }, include: withGrants }), this.now());
  }

  /**
   * Sets a password chosen by an administrator (or generates a one-time one, to be changed at the
   * next login) and opens a locked account.
   */
  async resetPassword(username: string, password?: string): Promise<{ user: UserView; password: string; generated: boolean }> {
    const user = await this.get(username);
    if (user.source === 'directory') throw directoryPassword(username);
    const generated = password === undefined;
    const next = password ?? generatePassword();
    checkPassword(next, username);
    const row = await this.prisma.user.update({
      where: { id: user.id },
      data: { passwordHash: await this.hash(next), mustChangePassword: generated, failedLogins: 0, lockedUntil: null },
      include: withGrants,
    });
    return { user: toUserView(row, this.now()), password: next, generated };
  }

  /** Re-checks a logged-in user's password before a sensitive change to their own account. */
  async confirmPassword(userId: number, password: string): Promise<{ username: string }> {
    const row = await this.prisma.user.findUnique({ where: { id: userId } });
    if (!row) throw new HaulError('UserNotFound', 'your account no longer exists; ask an administrator.');
    if (row.source === 'directory') throw directoryPassword(row.username);
    if (!(await argon2.verify(row.passwordHash, password))) throw new HaulError('LoginFailed', 'the current password is wrong; nothing was changed.');
    return row;
  }

  /** A user changing their own password must know the current one. */
  async changePassword(userId: number, current: string, next: string): Promise<UserView> {
    const row = await this.confirmPassword(userId, current);
    checkPassword(next, row.username);
    if (next === current) throw new HaulError('InvalidArgument', 'the new password is the current one; choose another.');
    const updated = await this.prisma.user.update({ where: { id: userId }, data: { passwordHash: await this.hash(next), mustChangePassword: false }, include: withGrants });
    return toUserView(updated, this.now());
  }

  /**
   * Starts setting up a second factor: a new secret, kept (sealed) as pending until the user
   * proves their app produces its codes. Starting again replaces it.
   */
  async startTotpEnrolment(userId: number): Promise<{ secret: string; username: string }> {
    const row = await this.prisma.user.findUnique({ where: { id: userId } });
    if (!row) throw new HaulError('UserNotFound', 'your account no longer exists; ask an administrator.');
    if (row.source === 'directory') {
      throw new HaulError('DirectoryAccount', 'your account signs in through the directory; a second factor there is up to the directory, the console keeps TOTP for local accounts only.');
    }
    if (row.totpSecret !== null) throw new HaulError('InvalidArgument', 'two-factor sign-in is already on; turn it off first (or ask an admin to reset it) to set up a new authenticator.');
    const secret = generateTotpSecret();
    await this.prisma.user.update({ where: { id: userId }, data: { totpPendingSecret: this.secretBox.seal(secret) } });
    return { secret, username: row.username };
  }

  /**
   * Turns the second factor on when `code` matches the pending secret; returns the recovery
   * codes, shown once (only their argon2id hashes are stored).
   */
  async confirmTotpEnrolment(userId: number, code: string): Promise<{ user: UserView; recoveryCodes: string[] }> {
    const row = await this.prisma.user.findUnique({ where: { id: userId } });
    if (!row?.totpPendingSecret) throw new HaulError('InvalidArgument', 'there is no second factor being set up; start the setup again (Account page).');
    const secret = this.secretBox.open(row.totpPendingSecret);
    const step = matchTotp(secret, code.replace(/\s/g, ''), this.now().getTime() / 1000);
    if (step === undefined) throw new HaulError('LoginFailed', 'that code does not match the secret; check the clock of the device with the authenticator app and enter the current code.');
    const recoveryCodes = Array.from({ length: RECOVERY_CODE_COUNT }, () => randomGroups(2));
    const hashes = await Promise.all(recoveryCodes.map((c) => this.hash(c)));
    const updated = await this.prisma.$transaction(async (tx) => {
      await tx.recoveryCode.deleteMany({ where: { userId } });
      await tx.recoveryCode.createMany({ data: hashes.map((codeHash) => ({ userId, codeHash })) });
      return tx.user.update({ where: { id: userId }, data: { totpSecret: row.totpPendingSecret, totpPendingSecret: null, totpLastStep: step }, include: withGrants });
    });
    return { user: toUserView(updated, this.now()), recoveryCodes };
  }

  /** Turns the second factor off (the user with their password, or an admin's reset) and spends its recovery codes. */
  async disableTotp(username: string): Promise<UserView> {
    const user = await this.get(username);
    const row = await this.prisma.$transaction(async (tx) => {
      await tx.recoveryCode.deleteMany({ where: { userId: user.id } });
      return tx.user.update({ where: { id: user.id }, data: { totpSecret: null, totpPendingSecret: null, totpLastStep: null }, include: withGrants });
    });
    return toUserView(row, this.now());
  }

  async unusedRecoveryCodes(userId: number): Promise<number> {
    return this.prisma.recoveryCode.count({ where: { userId, usedAt: null } });
  }

  /** The roles whose local accounts must have a second factor (an admin's setting). */
  async secondFactorRoles(): Promise<Role[]> {
    const row = await this.prisma.setting.findUnique({ where: { key: SECOND_FACTOR_ROLES_SETTING } });
    const parsed: unknown = row ? JSON.parse(row.value) : [];
    return Array.isArray(parsed) ? parsed.filter(isRole) : [];
  }

  async setSecondFactorRoles(roles: readonly Role[]): Promise<Role[]> {
    const value = JSON.stringify(ROLES.filter((r) => roles.includes(r)));
    await this.prisma.setting.upsert({ where: { key: SECOND_FACTOR_ROLES_SETTING }, create: { key: SECOND_FACTOR_ROLES_SETTING, value }, update: { value } });
    return this.secondFactorRoles();
  }

  /** Whether this user must set up a second factor before doing anything else. */
  async mustEnrolSecondFactor(user: UserView): Promise<boolean> {
    if (user.totp || user.source !== 'local') return false;
    const roles = await this.secondFactorRoles();
    // A member with roles on several tenants needs it when any of them requires it.
    return user.role === 'admin' ? roles.includes('admin') : user.grants.some((g) => roles.includes(g.role));
  }

  /** Where a login for this name goes: a local account, a directory account, or none yet. */
  async sourceOf(username: string): Promise<AccountSource | undefined> {
    const row = await this.prisma.user.findUnique({ where: { username }, select: { source: true } });
    return row ? (row.source === 'directory' ? 'directory' : 'local') : undefined;
  }

  /**
   * Creates or refreshes the account of a user the directory just authenticated, with the rights
   * their groups give: global admin, or a role per tenant (`*` stands for every tenant that exists
   * now; a tenant the mapping names that does not exist gives nothing). A failure count is
   * cleared as after any successful login. Undefined when the groups give no right at all.
   */
  async saveDirectoryUser(username: string, rights: { admin: boolean; grants: readonly { tenant: string; role: TenantRole }[] }): Promise<UserView | undefined> {
    checkUsername(username);
    if ((await this.sourceOf(username)) === 'local') throw new HaulError('UserExists', `${JSON.stringify(username)} is a local account; local accounts take precedence over the directory.`);
    const tenants = await this.prisma.tenant.findMany({ select: { id: true, name: true } });
    const byTenant = new Map<number, TenantRole>();
    for (const g of rights.admin ? [] : rights.grants) {
      for (const t of g.tenant === '*' ? tenants : tenants.filter((t) => t.name === g.tenant)) {
        // Operator wins where the groups give both roles on one tenant.
        if (byTenant.get(t.id) !== 'operator') byTenant.set(t.id, g.role);
      }
    }
    if (!rights.admin && byTenant.size === 0) return undefined;
    const role = rights.admin ? 'admin' : 'member';
    const row = await this.prisma.user.upsert({
      where: { username },
      create: { username, role, source: 'directory', passwordHash: NO_LOCAL_PASSWORD },
      update: { role, failedLogins: 0, lockedUntil: null },
      select: { id: true },
    });
    await this.prisma.$transaction([
      this.prisma.tenantGrant.deleteMany({ where: { userId: row.id } }),
      this.prisma.tenantGrant.createMany({ data: [...byTenant].map(([tenantId, r]) => ({ userId: row.id, tenantId, role: r })) }),
    ]);
    return this.byId(row.id);
  }

  /** Counts a failed login toward the lockout (the directory's wrong passwords count too). */
  async recordFailedLogin(userId: number): Promise<{ lockedNow?: Date }> {
    return this.recordFailure(userId, this.now());
  }

  /** Checks a login attempt and records its outcome (failure count, lockout). */
  async login(username: string, password: string, secondFactor?: string): Promise<LoginResult & { secondFactor?: SecondFactorUsed }> {
    const now = this.now();
    const row = await this.prisma.user.findUnique({ where: { username }, include: withGrants });
    if (!row) {
      // The same argon2 work as for a real account, so timing does not reveal which names exist.
      await argon2.verify(await this.dummy(), password);
      return { ok: false, reason: 'wrong-password' };
    }
    const user = toUserView(row, now);
    if (row.source === 'directory') return { ok: false, reason: 'directory-account', user };
    if (user.lockedUntil) return { ok: false, reason: 'locked', user, lockedUntil: user.lockedUntil };
    if (!(await argon2.verify(row.passwordHash, password))) return { ok: false, reason: 'wrong-password', user, ...(await this.recordFailure(row.id, now)) };
    if (user.disabled) return { ok: false, reason: 'disabled', user };
    let used: SecondFactorUsed = 'none';
    if (row.totpSecret !== null) {
      if (secondFactor === undefined || secondFactor.trim() === '') return { ok: false, reason: 'totp-required', user };
      used = await this.checkSecondFactor(row.id, row.totpSecret, secondFactor, now);
      if (used === 'none') return { ok: false, reason: 'totp-wrong', user, ...(await this.recordFailure(row.id, now)) };
    }
    // A secret written before sealing existed is sealed now that the console has a key.
    const reseal = row.totpSecret !== null && !SecretBox.isSealed(row.totpSecret) && this.secrets ? { totpSecret: this.secrets.seal(row.totpSecret) } : {};
    const updated = await this.prisma.user.update({ where: { id: row.id }, data: { failedLogins: 0, lockedUntil: null, ...reseal }, include: withGrants });
    return { ok: true, user: toUserView(updated, now), secondFactor: used };
  }

  /** A TOTP code (each time step once) or an unused recovery code (spent now). */
  private async checkSecondFactor(userId: number, sealedSecret: string, input: string, now: Date): Promise<SecondFactorUsed> {
    const text = input.trim().toLowerCase();
    if (isRecoveryCode(text)) {
      for (const code of await this.prisma.recoveryCode.findMany({ where: { userId, usedAt: null } })) {
        if (!(await argon2.verify(code.codeHash, text))) continue;
        // Spent at most once even when two logins race with the same code.
        const spent = await this.prisma.recoveryCode.updateMany({ where: { id: code.id, usedAt: null }, data: { usedAt: now } });
        return spent.count === 1 ? 'recovery-code' : 'none';
      }
      return 'none';
    }
    const step = matchTotp(this.secretBox.open(sealedSecret), text.replace(/\s/g, ''), now.getTime() / 1000);
    if (step === undefined) return 'none';
    // Replay: only a step later than the last accepted one, checked and written in one statement.
    const taken = await this.prisma.user.updateMany({ where: { id: userId, OR: [{ totpLastStep: null }, { totpLastStep: { lt: step } }] }, data: { totpLastStep: step } });
    return taken.count === 1 ? 'totp' : 'none';
  }

  private async recordFailure(userId: number, now: Date): Promise<{ lockedNow?: Date }> {
    const { failedLogins } = await this.prisma.user.update({ where: { id: userId }, data: { failedLogins: { increment: 1 } }, select: { failedLogins: true } });
    if (failedLogins < this.policy.maxFailedLogins) return {};
    const lockedNow = new Date(now.getTime() + this.policy.lockoutMs);
    // The count starts again when the lock ends.
    await this.prisma.user.update({ where: { id: userId }, data: { failedLogins: 0, lockedUntil: lockedNow } });
    return { lockedNow };
  }

  private dummy(): Promise<string> {
    this.dummyHash ??= this.hash(generatePassword());
    return this.dummyHash;
  }

  /** Refuses to take away the last enabled local admin: nobody could manage users any more. */
  private async keepAnAdmin(user: UserView, what: string): Promise<void> {
    if (user.role !== 'admin' || user.disabled) return;
    // Only local admins count: they can still log in while the directory is down.
    if (user.source !== 'local') return;
    const admins = await this.prisma.user.count({ where: { role: 'admin', disabled: false, source: 'local' } });
    if (admins <= 1) {
      throw new HaulError('LastAdmin', `cannot ${what} ${JSON.stringify(user.username)}: it is the only enabled admin, and without one nobody can manage users. Add another admin first (\`haul user add NAME --role admin\`).`);
    }
  }
}

function directoryPassword(username: string): HaulError {
  return new HaulError('DirectoryAccount', `${JSON.stringify(username)} signs in through the directory; its password is changed there, not in Haul.`);
}
