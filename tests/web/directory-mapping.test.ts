// The pure parts of directory logins: groups to rights (tenants included), the config file's
// checks and their messages, and the escaping that keeps a user name from widening a search.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDirectoryConfig, parseDirectoryConfig } from '../../web/server/directory/directory-config.js';
import { escapeFilterValue } from '../../web/server/directory/directory-client.js';
import { ALL_TENANTS, mapDirectoryGroups, type GroupRule } from '../../web/server/directory/group-mapping.js';
import { failure } from '../helpers/errors.js';

const rules: GroupRule[] = [
  { group: 'haul-admins', admin: true },
  { group: 'cn=ops,ou=groups,dc=example,dc=org', role: 'operator' },
  { group: 'Everyone-Reads', role: 'auditor' },
  { group: 'acme-ops', role: 'operator', tenant: 'acme' },
  { group: 'acme-audit', role: 'auditor', tenant: 'acme' },
  { group: 'globex-audit', role: 'auditor', tenant: 'globex' },
];

describe('mapping directory groups to console rights', () => {
  it('makes a member of an admin group an admin, with no grants needed', () => {
    expect(mapDirectoryGroups(['haul-admins', 'acme-ops'], rules)).toEqual({ admin: true, grants: [] });
  });

  it('matches group names and DNs case-insensitively, and ignores groups no rule names', () => {
    expect(mapDirectoryGroups(['CN=Ops,OU=Groups,DC=example,DC=org', 'unrelated'], rules)).toEqual({ admin: false, grants: [{ tenant: ALL_TENANTS, role: 'operator' }] });
    expect(mapDirectoryGroups(['everyone-reads'], rules)).toEqual({ admin: false, grants: [{ tenant: ALL_TENANTS, role: 'auditor' }] });
    expect(mapDirectoryGroups(['unrelated', 'cn=unrelated,dc=x'], rules)).toEqual({ admin: false, grants: [] });
    expect(mapDirectoryGroups([], rules)).toEqual({ admin: false, grants: [] });
  });

  it('gives per-tenant grants, operator winning over auditor on the same tenant, sorted with all tenants first', () => {
    expect(mapDirectoryGroups(['globex-audit', 'acme-audit', 'acme-ops'], rules)).toEqual({
      admin: false,
      grants: [{ tenant: 'acme', role: 'operator' }, { tenant: 'globex', role: 'auditor' }],
    });
  });

  it('leaves out a tenant grant that an all-tenants grant covers, and keeps one that is stronger', () => {
    expect(mapDirectoryGroups(['Everyone-Reads', 'acme-audit', 'acme-ops', 'globex-audit'], rules)).toEqual({
      admin: false,
      grants: [{ tenant: ALL_TENANTS, role: 'auditor' }, { tenant: 'acme', role: 'operator' }],
    });
    expect(mapDirectoryGroups(['cn=ops,ou=groups,dc=example,dc=org', 'acme-ops', 'globex-audit'], rules)).toEqual({
      admin: false,
      grants: [{ tenant: ALL_TENANTS, role: 'operator' }],
    });
  });
});

describe('the directory config file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-directory-config-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const base = { url: 'ldaps://ldap.example.org', bindDn: 'cn=haul,dc=example,dc=org', bindPassword: 's3cret', searchBase: 'ou=people,dc=example,dc=org', groupSearchBase: 'ou=groups,dc=example,dc=org', groups: [{ group: 'haul-admins', admin: true }] };

  it('fills in the defaults', () => {
    expect(parseDirectoryConfig(base, 'x.json')).toEqual({
      url: 'ldaps://ldap.example.org', startTls: false, bindDn: 'cn=haul,dc=example,dc=org', bindPassword: 's3cret',
      searchBase: 'ou=people,dc=example,dc=org', userFilter: '(&(objectClass=inetOrgPerson)(uid={username}))',
      groupSearchBase: 'ou=groups,dc=example,dc=org', groupFilter: '(&(objectClass=groupOfNames)(member={dn}))', groupNameAttribute: 'cn',
      groups: [{ group: 'haul-admins', admin: true }], timeoutMs: 10_000,
    });
  });

  it('names every field it does not accept, and points to the docs', async () => {
    const bad = { ...base, url: 'http://ldap.example.org', startTls: true, bindPasswordFile: '/x', userFilter: '(uid=*)', groups: [{ group: 'g', admin: true, role: 'operator' }, { group: 'h', admin: true, tenant: 'acme' }], colour: 'blue' };
    const err = await failure(Promise.resolve().then(() => parseDirectoryConfig(bad, '/etc/haul/directory.json')));
    expect(err.code).toBe('InvalidArgument');
    expect(err.message).toBe('the directory config /etc/haul/directory.json is not valid (url: must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]; userFilter: must contain {username}; groups.0: give either "admin": true or a "role" ("operator" or "auditor"); groups.1: an admin rule has no "tenant": admins manage every tenant; (top level): Unrecognized key: "colour"; bindPassword: give either "bindPassword" or "bindPasswordFile"); see docs/operations.md (Directory login) for its fields.');
    expect((await failure(Promise.resolve().then(() => parseDirectoryConfig({ ...base, bindPassword: undefined }, 'd.json')))).message).toContain('bindPassword: give either "bindPassword" or "bindPasswordFile"');
    expect((await failure(Promise.resolve().then(() => parseDirectoryConfig({ ...base, startTls: true }, 'd.json')))).message).toContain('startTls: "startTls" is for ldap:// URLs; an ldaps:// URL is TLS from the start');
    expect((await failure(Promise.resolve().then(() => parseDirectoryConfig({ ...base, groupSearchBase: undefined }, 'd.json')))).message).toContain('groupSearchBase: give "groupSearchBase" (to search groups) or "memberOfAttribute"');
  });

  it('reads the bind password and the CA from their files, and refuses an empty password file', async () => {
    fs.writeFileSync(path.join(dir, 'bind'), 'from a file\n');
    fs.writeFileSync(path.join(dir, 'ca.pem'), 'PEM');
    fs.writeFileSync(path.join(dir, 'empty'), '\n');
    const file = path.join(dir, 'directory.json');
    fs.writeFileSync(file, JSON.stringify({ ...base, bindPassword: undefined, bindPasswordFile: path.join(dir, 'bind'), tlsCaFile: path.join(dir, 'ca.pem') }));
    const c = loadDirectoryConfig(file);
    expect([c.bindPassword, c.ca?.toString()]).toEqual(['from a file', 'PEM']);
    fs.writeFileSync(file, JSON.stringify({ ...base, bindPassword: undefined, bindPasswordFile: path.join(dir, 'empty') }));
    expect((await failure(Promise.resolve().then(() => loadDirectoryConfig(file)))).message).toBe(`the bind password file of ${file} is empty; an empty password would bind anonymously. Write the service account's password into it.`);
    fs.writeFileSync(file, JSON.stringify({ ...base, tlsCaFile: path.join(dir, 'missing.pem') }));
    expect((await failure(Promise.resolve().then(() => loadDirectoryConfig(file)))).message).toBe(`the directory config ${file} names the CA file ${path.join(dir, 'missing.pem')}, which cannot be read (ENOENT); fix the path or the file's permissions.`);
    fs.writeFileSync(file, '{ not json');
    expect((await failure(Promise.resolve().then(() => loadDirectoryConfig(file)))).message).toMatch(new RegExp(`^the directory config ${file} is not JSON \\(.+\\); see docs/operations.md \\(Directory login\\) for its shape.$`));
  });

  it('escapes the characters that would change a search filter', () => {
    expect(escapeFilterValue('a*b(c)d\\e\0f')).toBe('a\\2ab\\28c\\29d\\5ce\\00f');
    expect(escapeFilterValue('plain.name-1')).toBe('plain.name-1');
  });
});
