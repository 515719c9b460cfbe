// Asks the directory whether a user name and password are good, and which groups the user is in:
// bind as the service account, find the user's entry with the configured filter, bind as that
// entry with the password, then read the groups (with the service account again). Each attempt
// uses its own connections, closed at the end, so no bind state carries over between users.
import { Client, ConfidentialityRequiredError, InvalidCredentialsError, type Entry } from 'ldapts';
import type { DirectoryConfig } from './directory-config.js';

export type DirectoryOutcome =
  | { kind: 'ok'; dn: string; groups: string[] }
  /** Unknown user or wrong password: the same answer, so names cannot be probed. */
  | { kind: 'wrong-password' }
  | { kind: 'disabled'; dn: string }
  /** The directory could not answer; `reason` is for the admins' log and holds no secret. */
  | { kind: 'unavailable'; reason: string };

/** RFC 4515: a value inside a search filter, with its special characters escaped. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function values(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const v = key === undefined ? [] : entry[key];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map((x) => x.toString());
}

class DirectoryDown extends Error {}

export class DirectoryClient {
  constructor(private readonly config: DirectoryConfig) {}

  async authenticate(username: string, password: string): Promise<DirectoryOutcome> {
    // An LDAP bind with an empty password is an anonymous bind that succeeds (RFC 4513 5.1.2).
    if (password === '' || username === '') return { kind: 'wrong-password' };
    try {
      return await this.attempt(username, password);
    } catch (err) {
      const reason = err instanceof DirectoryDown ? err.message : `${this.config.url}: ${describe(err)}`;
      return { kind: 'unavailable', reason: this.scrub(reason, password) };
    }
  }

  private async attempt(username: string, password: string): Promise<DirectoryOutcome> {
    const service = await this.connect();
    try {
      try {
        await service.bind(this.config.bindDn, this.config.bindPassword);
      } catch (err) {
        if (err instanceof InvalidCredentialsError) throw new DirectoryDown(`${this.config.url} refused the service account's bind (${this.config.bindDn}): check "bindDn" and the bind password in the directory config.`);
        throw err;
      }
      const filter = this.config.userFilter.replaceAll('{username}', escapeFilterValue(username));
      const attributes = this.config.memberOfAttribute ? [this.config.memberOfAttribute] : ['dn'];
      const { searchEntries } = await service.search(this.config.searchBase, { scope: 'sub', filter, attributes, sizeLimit: 2 });
      if (searchEntries.length === 0) return { kind: 'wrong-password' };
      if (searchEntries.length > 1) throw new DirectoryDown(`the user filter matches more than one entry for ${JSON.stringify(username)} under ${this.config.searchBase}; make "userFilter" match one entry per user.`);
      const entry = searchEntries[0]!;
      if (!(await this.passwordMatches(entry.dn, password))) return { kind: 'wrong-password' };
      // Checked only after the password, so "disabled" is never told to someone guessing.
      if (this.config.disabledFilter) {
        const hit = await service.search(entry.dn, { scope: 'base', filter: this.config.disabledFilter, attributes: ['dn'] });
        if (hit.searchEntries.length > 0) return { kind: 'disabled', dn: entry.dn };
      }
      return { kind: 'ok', dn: entry.dn, groups: await this.groupsOf(service, entry) };
    } finally {
      await service.unbind().catch(() => undefined);
    }
  }

  private async passwordMatches(dn: string, password: string): Promise<boolean> {
    const user = await this.connect();
    try {
      await user.bind(dn, password);
      return true;
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return false;
      throw err;
    } finally {
      await user.unbind().catch(() => undefined);
    }
  }

  /** The user's groups as DNs and names, whichever the rules use. */
  private async groupsOf(service: Client, entry: Entry): Promise<string[]> {
    if (this.config.memberOfAttribute) {
      const dns = values(entry, this.config.memberOfAttribute);
      return [...dns, ...dns.map((dn) => /^[^=]+=((?:\\.|[^,\\])+)/.exec(dn)?.[1] ?? dn)];
    }
    const filter = this.config.groupFilter.replaceAll('{dn}', escapeFilterValue(entry.dn));
    const { searchEntries } = await service.search(this.config.groupSearchBase!, { scope: 'sub', filter, attributes: [this.config.groupNameAttribute] });
    return searchEntries.flatMap((g) => [g.dn, ...values(g, this.config.groupNameAttribute)]);
  }

  private async connect(): Promise<Client> {
    const tlsOptions = { ...(this.config.ca ? { ca: this.config.ca } : {}) };
    const ldaps = this.config.url.startsWith('ldaps:');
    // ldapts opens TLS at once whenever it is given tlsOptions, even for ldap://; StartTLS must
    // begin in plain text, so the options go only to an ldaps:// client or to startTLS().
    const client = new Client({ url: this.config.url, timeout: this.config.timeoutMs, connectTimeout: this.config.timeoutMs, strictDN: false, ...(ldaps ? { tlsOptions } : {}) });
    if (this.config.startTls) await client.startTLS(tlsOptions);
    return client;
  }

  /** Belt and braces: whatever a library puts into an error message, no password reaches the log. */
  private scrub(text: string, password: string): string {
    let out = text;
    for (const secret of [this.config.bindPassword, password]) if (secret) out = out.split(secret).join('***');
    return out;
  }
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') return 'connection refused (is the directory server running, and is the URL right?)';
  if (e?.code === 'ENOTFOUND') return 'unknown host name';
  if (err instanceof ConfidentialityRequiredError) return 'the directory requires TLS (confidentiality required): use an ldaps:// URL or "startTls": true';
  return e?.message ?? String(err);
}
