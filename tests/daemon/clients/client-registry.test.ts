import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClientRegistry, parseAddress } from '../../../daemon/clients/client-registry.js';
import { haulEnv, haulSync, tempDir } from '../../helpers/cli.js';

describe('client registry', () => {
  const tmp = tempDir('clients');
  afterAll(() => tmp.cleanup());

  it('parses user@host[:port] and refuses anything else with a clear message', () => {
    expect(parseAddress('backup@web1.example.org')).toEqual({ user: 'backup', host: 'web1.example.org', port: 22 });
    expect(parseAddress('haul@10.0.0.5:2222')).toEqual({ user: 'haul', host: '10.0.0.5', port: 2222 });
    expect(parseAddress('haul@[::1]:22')).toEqual({ user: 'haul', host: '::1', port: 22 });
    expect(() => parseAddress('web1')).toThrow('"web1" is not an address of the form user@host or user@host:port.');
    expect(() => parseAddress('a@b:70000')).toThrow('port 70000 is out of range (1-65535).');
    expect(() => parseAddress('a;rm -rf /@b')).toThrow('is not an address');
  });

  it('adds, updates and removes clients in one atomically rewritten file', () => {
    const reg = new ClientRegistry(path.join(tmp.dir, 'state'));
    reg.add({ name: 'web1', user: 'backup', host: 'web1', port: 22, paths: ['/srv', '/etc'], excludes: ['*.tmp'], oneFileSystem: true });
    expect(() => reg.add({ name: 'web1', user: 'b', host: 'h', port: 22, paths: ['/'], excludes: [], oneFileSystem: false })).toThrow('a client named web1 exists already.');
    expect(() => reg.add({ name: 'Bad Name', user: 'b', host: 'h', port: 22, paths: ['/'], excludes: [], oneFileSystem: false })).toThrow('is not a valid client name');
    expect(() => reg.add({ name: 'x', user: 'b', host: 'h', port: 22, paths: ['/srv/../etc'], excludes: [], oneFileSystem: false })).toThrow('"/srv/../etc" is not an absolute, normalised path');
    expect(() => reg.add({ name: 'x', user: 'b', host: 'h', port: 22, paths: [], excludes: [], oneFileSystem: false })).toThrow('a client needs at least one path');
    reg.update('web1', (c) => ({ ...c, hostKey: 'SHA256:' + 'A'.repeat(43) }));
    expect(new ClientRegistry(path.join(tmp.dir, 'state')).get('web1').hostKey).toBe('SHA256:' + 'A'.repeat(43));
    expect(fs.statSync(path.join(tmp.dir, 'state', 'clients.json')).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.join(tmp.dir, 'state')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    reg.remove('web1');
    expect(reg.list()).toEqual([]);
    expect(() => reg.get('web1')).toThrow('there is no client named "web1".');
  });

  it('`haul client add` prints the restricted authorized_keys line to paste on the client', () => {
    const home = path.join(tmp.dir, 'home');
    const env = haulEnv(path.join(tmp.dir, 'unused-repo'), { HAUL_HOME: home });
    const r = haulSync(['client', 'add', 'db1', 'backup@db1.example:2200', '--path', '/var/lib/postgresql', '--json'], env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.client).toMatchObject({ name: 'db1', user: 'backup', host: 'db1.example', port: 2200, paths: ['/var/lib/postgresql'] });
    expect(out.authorizedKeysLine).toMatch(/^restrict ssh-ed25519 [A-Za-z0-9+/=]+ haul@\S+$/);
    // The identity is made once and reused.
    const again = haulSync(['client', 'add', 'db2', 'backup@db2.example', '--path', '/srv', '--json'], env);
    expect(JSON.parse(again.stdout).authorizedKeysLine).toBe(out.authorizedKeysLine);
    const list = haulSync(['client', 'list'], env);
    expect(list.stdout).toContain('db1                  backup@db1.example:2200  (host key not pinned yet)  /var/lib/postgresql\n');
  });
});
