// The daemon's SSH layer against a real OpenSSH server: the server's identity and its
// authorized_keys line, host key pinning (invariant 4), every way a connection fails, and
// commands over exec channels.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { failure } from '../../helpers/errors.js';
import {
  authorizedKeysLine,
  loadOrCreateServerIdentity,
  loadServerIdentity,
  PRIVATE_KEY_FILE,
  PUBLIC_KEY_FILE,
  type ServerIdentity,
} from '../../../daemon/session/server-identity.js';
import { connectToClient, posixShell, type SshConnection } from '../../../daemon/session/ssh-connection.js';
import { freePort, sshdSkipReason, startSshd, type TestSshd } from '../../helpers/sshd.js';

const USER = 'haul-t-conn';


describe('server identity', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-identity-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is generated once, stored with mode 0600 in a 0700 folder, and the same on every load', () => {
    const keyDir = path.join(dir, 'keys');
    const a = loadOrCreateServerIdentity(keyDir, { comment: 'haul@test' });
    expect(fs.statSync(keyDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(keyDir, PRIVATE_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(keyDir, PUBLIC_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(keyDir).sort()).toEqual([PRIVATE_KEY_FILE, PUBLIC_KEY_FILE]);
    const b = loadOrCreateServerIdentity(keyDir);
    expect(b.publicKey).toBe(a.publicKey);
    expect(b.privateKey).toBe(a.privateKey);
    expect(a.keyType).toBe('ssh-ed25519');
    expect(a.publicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}$/);
  });

  it('has the fingerprint ssh-keygen computes, and a private key OpenSSH can read', () => {
    const keyDir = path.join(dir, 'keys');
    const id = loadServerIdentity(keyDir);
    const fromKeygen = execFileSync('ssh-keygen', ['-lf', path.join(keyDir, PUBLIC_KEY_FILE)]).toString().split(/\s+/)[1];
    expect(id.fingerprint).toBe(fromKeygen);
    // ssh-keygen -y derives the public key from the private file: same key as ours.
    const derived = execFileSync('ssh-keygen', ['-y', '-f', path.join(keyDir, PRIVATE_KEY_FILE)]).toString().trim();
    expect(derived.split(' ').slice(0, 2).join(' ')).toBe(id.publicKey);
  });

  it('gives the exact authorized_keys line: restrict, the key, a haul@host comment', () => {
    const id = loadServerIdentity(path.join(dir, 'keys'));
    expect(authorizedKeysLine(id, { comment: 'haul@backup1' })).toBe(`restrict ${id.publicKey} haul@backup1`);
    expect(authorizedKeysLine(id)).toBe(`restrict ${id.publicKey} haul@${os.hostname()}`);
    expect(() => authorizedKeysLine(id, { comment: 'x\nssh-ed25519 AAAA evil' })).toThrow(/printable/);
  });

  it('refuses a private key others can read, as OpenSSH does', () => {
    const keyDir = path.join(dir, 'loose');
    loadOrCreateServerIdentity(keyDir);
    fs.chmodSync(path.join(keyDir, PRIVATE_KEY_FILE), 0o644);
    expect(() => loadServerIdentity(keyDir)).toThrow(/chmod 600/);
  });
});

const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`SSH connection to a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let tmp: string;
  let identity: ServerIdentity;
  let outsider: ServerIdentity;
  let unrestricted: ServerIdentity;

  const connect = (extra: Partial<Parameters<typeof connectToClient>[0]> = {}): Promise<SshConnection> =>
    connectToClient({ host: sshd.host, port: sshd.port, user: USER, identity, clientName: 'web1', ...extra });

  beforeAll(async () => {
    sshd = await startSshd({ users: [USER] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-ssh-conn-'));
    identity = loadOrCreateServerIdentity(path.join(tmp, 'server'));
    outsider = loadOrCreateServerIdentity(path.join(tmp, 'outsider'));
    unrestricted = loadOrCreateServerIdentity(path.join(tmp, 'unrestricted'));
    sshd.authorize(USER, authorizedKeysLine(identity));
    // A control: the same kind of key without `restrict`, to show what `restrict` takes away.
    sshd.authorize(USER, `${unrestricted.publicKey} control-without-restrict`);
  });

  afterAll(async () => {
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('logs in with the server key and runs a command as the client user', async () => {
    const conn = await connect();
    try {
      const r = await conn.run('id -un');
      expect(r.code).toBe(0);
      expect(r.stdout.toString().trim()).toBe(USER);
      expect(conn.label).toBe(`client "web1" (${USER}@127.0.0.1:${sshd.port})`);
    } finally {
      await conn.close();
    }
    expect(conn.closed).toBe(true);
  });

  it('on first contact returns the host key fingerprint, the one ssh-keygen -lf prints for the host key', async () => {
    const conn = await connect();
    try {
      expect(conn.firstContact).toBe(true);
      expect(conn.hostKeyFingerprint).toBe(sshd.hostKeyFingerprint);
      expect(conn.hostKeyType).toBe('ssh-ed25519');
    } finally {
      await conn.close();
    }
  });

  it('connects with the right pin', async () => {
    const conn = await connect({ pinnedHostKey: sshd.hostKeyFingerprint });
    try {
      expect(conn.firstContact).toBe(false);
      expect((await conn.run('echo pinned')).stdout.toString()).toBe('pinned\n');
    } finally {
      await conn.close();
    }
  });

  it('negotiates curve25519 and aes128-gcm, never SHA-1 host key signatures', async () => {
    const conn = await connect();
    try {
      expect(conn.negotiated?.kex).toMatch(/^curve25519-sha256/);
      expect(conn.negotiated?.cs.cipher).toBe('aes128-gcm@openssh.com');
      expect(conn.negotiated?.sc.cipher).toBe('aes128-gcm@openssh.com');
      expect(conn.negotiated?.serverHostKey).toBe('ssh-ed25519');
    } finally {
      await conn.close();
    }
  });

  it('refuses a changed host key with HostKeyChanged, naming both fingerprints and the re-pin command', async () => {
    const wrong = 'SHA256:' + 'A'.repeat(43);
    const logins = (): number => sshd.log().split('Accepted publickey').length;
    const before = logins();
    const err = await failure(connect({ pinnedHostKey: wrong }));
    expect(err.code).toBe('HostKeyChanged');
    expect(err.message).toBe(
      `The SSH host key of client "web1" (${USER}@127.0.0.1:${sshd.port}) has changed: Haul pinned ${wrong}, ` +
        `the client now shows an ED25519 key ${sshd.hostKeyFingerprint}. Haul does not connect to it until the key is checked. ` +
        `This happens when the client was reinstalled or its host keys regenerated, but it can also mean someone is intercepting the connection. ` +
        `Verify the new fingerprint on the client itself (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then re-pin it: haul client pin web1`,
    );
    // Refused during key exchange, before the daemon offers its key: no login happened.
    expect(logins()).toBe(before);
  });

  it('with first-use trust turned off, refuses an unpinned host with HostKeyUnknown', async () => {
    const err = await failure(connect({ trustOnFirstUse: false }));
    expect(err.code).toBe('HostKeyUnknown');
    expect(err.message).toContain(sshd.hostKeyFingerprint);
    expect(err.message).toContain('haul client pin web1');
  });

  it('refuses a malformed pin before connecting', async () => {
    const err = await failure(connect({ pinnedHostKey: 'MD5:aa:bb' }));
    expect(err.code).toBe('InvalidArgument');
  });

  it('maps a key missing from authorized_keys to AuthRefused, saying what to paste', async () => {
    const err = await failure(connect({ identity: outsider }));
    expect(err.code).toBe('AuthRefused');
    expect(err.message).toContain(`refused the daemon's SSH key for user ${USER}`);
    expect(err.message).toContain('haul client add');
    expect(err.message).toContain(`~${USER}/.ssh/authorized_keys`);
  });

  it('maps a closed port to Unreachable, fast, naming host:port and what to check', async () => {
    const port = await freePort();
    const started = Date.now();
    const err = await failure(connect({ port }));
    const ms = Date.now() - started;
    expect(err.code).toBe('Unreachable');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('connection refused');
    expect(err.message).toContain('sshd runs on the client');
    expect(ms).toBeLessThan(2_000);
  });

  it('maps a server that never speaks to Unreachable after the connect timeout', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const err = await failure(connect({ port, timeouts: { connectMs: 700 } }));
      const ms = Date.now() - started;
      expect(err.code).toBe('Unreachable');
      expect(err.message).toContain('no SSH session within 0.7 s');
      expect(err.message).toContain('firewall');
      expect(ms).toBeGreaterThanOrEqual(650);
      expect(ms).toBeLessThan(3_000);
    } finally {
      silent.close();
    }
  });

  it('maps a name that does not resolve to Unreachable', async () => {
    const err = await failure(connect({ host: 'no-such-client.invalid', timeouts: { connectMs: 5_000 } }));
    expect(err.code).toBe('Unreachable');
    expect(err.message).toMatch(/no-such-client\.invalid/);
  });

  it('the restrict line allows exec but refuses port forwarding and a pty; without restrict both work', async () => {
    const conn = await connect();
    const control = await connect({ identity: unrestricted });
    const forward = (c: SshConnection): Promise<string> =>
      new Promise((resolve, reject) => {
        c.ssh.forwardOut('127.0.0.1', 0, '127.0.0.1', sshd.port, (err, stream) => {
          if (err) return reject(err);
          stream.once('data', (d: Buffer) => {
            stream.close();
            resolve(d.toString());
          });
        });
      });
    const pty = (c: SshConnection): Promise<string> =>
      new Promise((resolve, reject) => {
        c.ssh.exec('tty', { pty: true }, (err, ch) => {
          if (err) return reject(err);
          let out = '';
          ch.on('data', (d: Buffer) => (out += d.toString()));
          ch.on('close', () => resolve(out));
        });
      });
    try {
      expect((await conn.run('echo ok')).stdout.toString()).toBe('ok\n');
      await expect(forward(conn)).rejects.toThrow(/administratively prohibited|open failed/i);
      await expect(pty(conn)).rejects.toThrow(/pseudo-terminal|pty/i);
      // The control key proves the refusals come from `restrict`, not from sshd's config.
      expect(await forward(control)).toMatch(/^SSH-2\.0-OpenSSH/);
      expect(await pty(control)).toMatch(/^\/dev\/pts\//);
    } finally {
      await conn.close();
      await control.close();
    }
  });

  it('exec streams stdin, reports exit codes and signals; run bounds the output it keeps', async () => {
    const conn = await connect();
    try {
      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      const proc = await conn.exec('sha256sum', { stdin: Readable.from([big.subarray(0, 1000), big.subarray(1000)]) });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr.resume();
      expect(await proc.exit).toEqual({ code: 0, signal: null });
      const expected = execFileSync('sha256sum', { input: big }).toString();
      expect(out).toBe(expected);

      expect(await conn.run('exit 3')).toMatchObject({ code: 3, signal: null });
      expect(await conn.run('kill -TERM $$')).toMatchObject({ code: null, signal: 'SIGTERM' });

      const r = await conn.run('head -c 3000000 /dev/zero; echo to-stderr >&2', { maxOutputBytes: 1000 });
      expect(r.code).toBe(0);
      expect(r.truncated).toBe(true);
      expect(r.stdout.length).toBe(1000);
      expect(r.stderr.toString()).toBe('to-stderr\n');

      // posixShell: the same script whatever the login shell.
      const s = await conn.run(posixShell('x="a b"; echo "${x}" $((1 + 2))'));
      expect(s.stdout.toString()).toBe('a b 3\n');
      expect(() => posixShell("echo 'quoted'")).toThrow(/quotes/);
    } finally {
      await conn.close();
    }
  });

  it('a command that outlives its timeout is stopped with ConnectionLost; so is one whose connection drops', async () => {
    const conn = await connect();
    try {
      // `exec`: the signal request reaches the process sshd started, so that must be the command itself.
      const err = await failure(conn.run('exec sleep 31', { timeoutMs: 300 }));
      expect(err.code).toBe('ConnectionLost');
      expect(err.message).toContain('did not finish within 0.3 s');
      // The command really was ended on the client (by the signal request), and the connection is still usable.
      await new Promise((r) => setTimeout(r, 300));
      expect(spawnSync('pgrep', ['-u', USER, '-f', '^sleep 31$']).status).toBe(1);
      expect((await conn.run('echo still')).stdout.toString()).toBe('still\n');

      const running = await conn.exec('echo $$; exec sleep 32');
      const pid = await new Promise<number>((resolve) => running.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      conn.ssh.destroy();
      expect(await running.exit).toEqual({ code: null, signal: null });
      const lost = await failure(conn.run('true'));
      expect(lost.code).toBe('ConnectionLost');
      expect(lost.message).toContain(`The SSH connection to client "web1" (${USER}@127.0.0.1:${sshd.port}) was lost`);
      // sshd leaves a command without a pty running when the connection drops; end ours.
      process.kill(pid, 'SIGKILL');
    } finally {
      await conn.close();
    }
  });

  it('close() cuts a connection whose peer never finishes the TCP close, after the grace period', async () => {
    // A relay that carries the session, then, once the daemon's side ends, goes silent: it never
    // ends either socket, as a stalled link or a client that stops reading would.
    const sockets: net.Socket[] = [];
    const relay = net.createServer({ allowHalfOpen: true }, (inbound) => {
      const outbound = net.connect(sshd.port, '127.0.0.1');
      sockets.push(inbound, outbound);
      inbound.pipe(outbound, { end: false });
      outbound.pipe(inbound, { end: false });
      inbound.on('end', () => {
        outbound.unpipe(inbound);
        inbound.unpipe(outbound);
      });
      for (const s of [inbound, outbound]) s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const port = (relay.address() as net.AddressInfo).port;
      const conn = await connectToClient({ host: '127.0.0.1', port, user: USER, identity, clientName: 'web1', timeouts: { closeGraceMs: 600 } });
      expect((await conn.run('echo via relay')).stdout.toString()).toBe('via relay\n');
      const t0 = performance.now();
      const closed = await Promise.race([conn.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 5 s'), 5_000))]);
      const ms = performance.now() - t0;
      expect(closed).toBe('closed');
      // It did wait for the peer first: the relay never answered the close.
      expect(ms).toBeGreaterThanOrEqual(550);
      expect(ms).toBeLessThan(3_000);
    } finally {
      for (const s of sockets) s.destroy();
      relay.close();
    }
  });

  it('measures: connect + login, and the round trip of one exec', async () => {
    const t0 = performance.now();
    const conn = await connect({ pinnedHostKey: sshd.hostKeyFingerprint });
    const connectMs = performance.now() - t0;
    try {
      await conn.run('true'); // warm up
      const n = 30;
      const t1 = performance.now();
      for (let i = 0; i < n; i++) expect((await conn.run('true')).code).toBe(0);
      const execMs = (performance.now() - t1) / n;
      const t2 = performance.now();
      for (let i = 0; i < n; i++) await conn.run(posixShell('true'));
      const wrappedMs = (performance.now() - t2) / n;
      console.log(`ssh on loopback: connect+login ${connectMs.toFixed(1)} ms; exec round trip ${execMs.toFixed(2)} ms ('true'), ${wrappedMs.toFixed(2)} ms (through /bin/sh -c)`);
      expect(execMs).toBeLessThan(500);
    } finally {
      await conn.close();
    }
  });
});
