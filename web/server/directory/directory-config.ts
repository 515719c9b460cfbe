// The directory (LDAP) settings of the console: one JSON object in the file named by
// `haul web --directory FILE` or HAUL_DIRECTORY_FILE (docs/operations.md, Directory login).
// Checked whole at start, so a typo stops the console with the field it did not understand.
import * as fs from 'node:fs';
import { z } from 'zod';
import { HaulError } from '../../../shared/errors.js';
import type { GroupRule } from './group-mapping.js';

const groupRule = z.object({
  group: z.string().min(1),
  admin: z.literal(true).optional(),
  role: z.enum(['operator', 'auditor']).optional(),
  tenant: z.string().min(1).max(64).optional(),
}).strict()
  .refine((r) => (r.admin === true) !== (r.role !== undefined), { message: 'give either "admin": true or a "role" ("operator" or "auditor")' })
  .refine((r) => !(r.admin && r.tenant), { message: 'an admin rule has no "tenant": admins manage every tenant' });

const fileSchema = z.object({
  /** ldap://host[:port] (with "startTls": true for StartTLS) or ldaps://host[:port]. */
  url: z.string().regex(/^ldaps?:\/\/[^/\s]+\/?$/, 'must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]'),
  startTls: z.boolean().default(false),
  /** PEM file of the CA that signed the directory's certificate; default: the system's CAs. */
  tlsCaFile: z.string().min(1).optional(),
  bindDn: z.string().min(1),
  bindPassword: z.string().min(1).optional(),
  bindPasswordFile: z.string().min(1).optional(),
  searchBase: z.string().min(1),
  userFilter: z.string().includes('{username}', { message: 'must contain {username}' }).default('(&(objectClass=inetOrgPerson)(uid={username}))'),
  /** Matched against the user's entry: a match means the account is disabled in the directory. */
  disabledFilter: z.string().min(3).optional(),
  /** An attribute of the user's entry listing their groups' DNs (Active Directory, the memberof overlay). */
  memberOfAttribute: z.string().min(1).optional(),
  /** Otherwise: the groups are searched here with groupFilter. */
  groupSearchBase: z.string().min(1).optional(),
  groupFilter: z.string().includes('{dn}', { message: 'must contain {dn}' }).default('(&(objectClass=groupOfNames)(member={dn}))'),
  groupNameAttribute: z.string().min(1).default('cn'),
  groups: z.array(groupRule).min(1),
  timeoutSeconds: z.number().positive().max(120).default(10),
}).strict()
  .refine((c) => (c.bindPassword === undefined) !== (c.bindPasswordFile === undefined), { message: 'give either "bindPassword" or "bindPasswordFile"', path: ['bindPassword'] })
  .refine((c) => !(c.startTls && c.url.startsWith('ldaps:')), { message: '"startTls" is for ldap:// URLs; an ldaps:// URL is TLS from the start', path: ['startTls'] })
  .refine((c) => c.memberOfAttribute !== undefined || c.groupSearchBase !== undefined, { message: 'give "groupSearchBase" (to search groups) or "memberOfAttribute" (to read them from the user\'s entry)', path: ['groupSearchBase'] });

export interface DirectoryConfig {
  url: string;
  startTls: boolean;
  /** The CA certificate(s) read from tlsCaFile. */
  ca?: Buffer;
  bindDn: string;
  /** Never logged and never shown. */
  bindPassword: string;
  searchBase: string;
  userFilter: string;
  disabledFilter?: string;
  memberOfAttribute?: string;
  groupSearchBase?: string;
  groupFilter: string;
  groupNameAttribute: string;
  groups: GroupRule[];
  timeoutMs: number;
}

function readSideFile(file: string, what: string, configFile: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new HaulError('InvalidArgument', `the directory config ${configFile} names ${what} ${file}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix the path or the file's permissions.`);
  }
}

/** Checks a parsed config object; `source` names it in errors. */
export function parseDirectoryConfig(value: unknown, source: string): DirectoryConfig {
  const parsed = fileSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('; ');
    throw new HaulError('InvalidArgument', `the directory config ${source} is not valid (${issues}); see docs/operations.md (Directory login) for its fields.`);
  }
  const c = parsed.data;
  const bindPassword = c.bindPassword ?? readSideFile(c.bindPasswordFile!, 'the bind password file', source).toString('utf8').replace(/\r?\n$/, '');
  if (bindPassword === '') throw new HaulError('InvalidArgument', `the bind password file of ${source} is empty; an empty password would bind anonymously. Write the service account's password into it.`);
  return {
    url: c.url.replace(/\/$/, ''),
    startTls: c.startTls,
    ...(c.tlsCaFile ? { ca: readSideFile(c.tlsCaFile, 'the CA file', source) } : {}),
    bindDn: c.bindDn,
    bindPassword,
    searchBase: c.searchBase,
    userFilter: c.userFilter,
    ...(c.disabledFilter ? { disabledFilter: c.disabledFilter } : {}),
    ...(c.memberOfAttribute ? { memberOfAttribute: c.memberOfAttribute } : {}),
    ...(c.groupSearchBase ? { groupSearchBase: c.groupSearchBase } : {}),
    groupFilter: c.groupFilter,
    groupNameAttribute: c.groupNameAttribute,
    groups: c.groups.map((g) => ({ group: g.group, ...(g.admin ? { admin: true as const } : {}), ...(g.role ? { role: g.role } : {}), ...(g.tenant ? { tenant: g.tenant } : {}) })),
    timeoutMs: c.timeoutSeconds * 1000,
  };
}

export function loadDirectoryConfig(file: string): DirectoryConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaulError('InvalidArgument', `the directory config ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the path of a JSON file as in docs/operations.md (Directory login).`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HaulError('InvalidArgument', `the directory config ${file} is not JSON (${(err as Error).message}); see docs/operations.md (Directory login) for its shape.`);
  }
  return parseDirectoryConfig(value, file);
}
