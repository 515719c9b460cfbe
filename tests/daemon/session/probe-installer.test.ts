// Putting the probe on a client over a real SSH connection: upload once, reuse the cached copy,
// replace a damaged one, and clear errors for a noexec cache, a full disk and a missing build.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { authorizedKeysLine, loadOrCreateServerIdentity, type ServerIdentity } from '../../../daemon/session/server-identity.js';
import { connectToClient, type SshConnection } from '../../../daemon/session/ssh-connection.js';
import { ensureProbe, probeCommand, startCachedProbe, type StartedProbe } from '../../../daemon/session/probe-installer.js';
import { startProbe } from '../../../daemon/session/probe-process.js';
import { failure } from '../../helpers/errors.js';
import { ensureUser, mountTmpfs, sshdSkipReason, startSshd, tmpfsSkipReason, unmount, type TestSshd, type UnixUser } from '../../helpers/sshd.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const probeDir = path.join(root, 'probe', 'dist');
const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';

const PROBE = 'haul-t-probe';
const NOEXEC = 'haul-t-noexec';
const FULL = 'haul-t-full';
const XDG = 'haul-t-xdg';
const NOHASH = 'haul-t-nohash';
const STALE = 'haul-t-rst-stale';
const USERS = [PROBE, NOEXEC, FULL, XDG, NOHASH, STALE];


const skip = sshdSkipReason();

describe.skipIf(skip !== undefined)(`probe installer over a real sshd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let sshd: TestSshd;
  let tmp: string;
  let identity: ServerIdentity;
  let probeBytes: Buffer;
  let probeSha: string;
  const users = new Map<string, UnixUser>();
  const mounts: string[] = [];
  const open: SshConnection[] = [];

  const connect = async (user: string): Promise<SshConnection> => {
    const conn = await connectToClient({ host: sshd.host, port: sshd.port, user, identity, clientName: `client-${user}`, pinnedHostKey: sshd.hostKeyFingerprint });
    open.push(conn);
    return conn;
  };

  /** The user's ~/.cache as a fresh, empty directory (or whatever `mount` puts there). */
  const resetCache = (user: string): string => {
    const u = users.get(user)!;
    const cache = path.join(u.home, '.cache');
    unmount(cache);
    fs.rmSync(cache, { recursive: true, force: true });
    return cache;
  };

  beforeAll(async () => {
    execFileSync('bash', [path.join(root, 'probe', 'build.sh')], { stdio: 'pipe' });
    probeBytes = fs.readFileSync(path.join(probeDir, `haul-probe-${arch}`));
    probeSha = createHash('sha256').update(probeBytes).digest('hex');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'haul-probe-install-'));
    fs.chmodSync(tmp, 0o755);
    for (const u of USERS) users.set(u, ensureUser(u));

    // XDG: the remedy the NoExec message suggests, set by sshd for one user.
    const xdgCache = path.join(tmp, 'xdg-cache');
    fs.mkdirSync(xdgCache);
    fs.chownSync(xdgCache, users.get(XDG)!.uid, users.get(XDG)!.gid);
    // NOHASH: a PATH with the usual tools but no sha256sum.
    const bin = path.join(tmp, 'bin-without-sha256sum');
    fs.mkdirSync(bin);
    for (const tool of ['uname', 'wc', 'cat', 'mkdir', 'chmod', 'mv', 'rm', 'find', 'id', 'ls']) {
      const where = execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim();
      fs.symlinkSync(where, path.join(bin, tool));
    }
    sshd = await startSshd({
      users: USERS,
      extraConfig: [`Match User ${XDG}`, `  SetEnv XDG_CACHE_HOME=${xdgCache}`, `Match User ${NOHASH}`, `  SetEnv PATH=${bin}`],
    });
    identity = loadOrCreateServerIdentity(path.join(tmp, 'server'));
    for (const u of USERS) {
      sshd.authorize(u, authorizedKeysLine(identity));
      resetCache(u);
    }
  });

  afterAll(async () => {
    for (const c of open) await c.close().catch(() => {});
    for (const m of mounts) unmount(m);
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('uploads the probe once, then reuses the cached copy; the copy is exact, 0700 and the user\'s', async () => {
    const cache = resetCache(PROBE);
    const conn = await connect(PROBE);
    const t0 = performance.now();
    const first = await ensureProbe(conn, { probeDir });
    const uploadMs = performance.now() - t0;
    const expectedPath = path.join(cache, 'haul', `haul-probe-${probeSha}`);
    expect(first).toEqual({ path: expectedPath, arch, sha256: probeSha, size: probeBytes.length, uploaded: true, version: expect.stringMatching(new RegExp(`^haul-probe \\S+ \\(${arch}`)) });
    expect(fs.readFileSync(expectedPath).equals(probeBytes)).toBe(true);
    const st = fs.statSync(expectedPath);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(users.get(PROBE)!.uid);
    expect(fs.readdirSync(path.join(cache, 'haul'))).toEqual([`haul-probe-${probeSha}`]); // no temporary file left

    const t1 = performance.now();
    const second = await ensureProbe(conn, { probeDir });
    const cachedMs = performance.now() - t1;
    expect(second).toEqual({ path: expectedPath, arch, sha256: probeSha, size: probeBytes.length, uploaded: false });
    console.log(
      `probe install over ssh (loopback): upload of ${(probeBytes.length / 1024).toFixed(0)} KiB with checks and --version ${uploadMs.toFixed(1)} ms; ` +
        `cached copy confirmed in ${cachedMs.toFixed(1)} ms (one exec)`,
    );
  });

  it('replaces a cached copy with one byte changed, and removes older cached versions', async () => {
    const conn = await connect(PROBE);
    const installed = await ensureProbe(conn, { probeDir });
    // Damage one byte over SSH, as a client could; and leave an "older version" next to it.
    const damage = await conn.run(`printf X | dd of="${installed.path}" bs=1 seek=4096 conv=notrunc 2>/dev/null && echo old > "${path.dirname(installed.path)}/haul-probe-${'0'.repeat(64)}"`);
    expect(damage.code).toBe(0);
    expect(fs.readFileSync(installed.path).equals(probeBytes)).toBe(false);

    const again = await ensureProbe(conn, { probeDir });
    expect(again.uploaded).toBe(true);
    expect(fs.readFileSync(installed.path).equals(probeBytes)).toBe(true);
    expect(fs.readdirSync(path.dirname(installed.path))).toEqual([`haul-probe-${probeSha}`]);
    // Not executable any more: also replaced.
    fs.chmodSync(installed.path, 0o600);
    expect((await ensureProbe(conn, { probeDir })).uploaded).toBe(true);
    expect(fs.statSync(installed.path).mode & 0o777).toBe(0o700);
  });

  it('startCachedProbe: a cached, intact probe is checked and started by one command; otherwise it is put there first', async () => {
    const cache = resetCache(PROBE);
    const conn = await connect(PROBE);
    const execs: string[] = [];
    const exec = conn.exec.bind(conn);
    conn.exec = (command, options) => {
      execs.push(command);
      return exec(command, options);
    };
    const expectedPath = path.join(cache, 'haul', `haul-probe-${probeSha}`);
    // Nothing cached: the discovery part answers (first command), the upload is the second; the caller starts it.
    const first = await startCachedProbe(conn, { probeDir }, ['--serve']);
    expect(first).toEqual({ path: expectedPath, arch, sha256: probeSha, size: probeBytes.length, uploaded: true, version: expect.stringMatching(/^haul-probe /) });
    expect(execs).toHaveLength(2);

    // Cached: one command, and what it prints after the marker line is the probe's own HELLO.
    execs.length = 0;
    const second = (await startCachedProbe(conn, { probeDir }, ['--serve'])) as StartedProbe;
    expect(execs).toHaveLength(1);
    expect(second.probe).toEqual({ path: expectedPath, arch, sha256: probeSha, size: probeBytes.length, uploaded: false });
    const hello = await new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 13) {
          second.proc.stdout.off('data', onData);
          resolve(got);
        }
      };
      second.proc.stdout.on('data', onData);
      second.proc.stdout.resume();
    });
    // A frame: u32 length, type 1 (HELLO), then the magic.
    expect(hello.readUInt32LE(0)).toBeGreaterThan(9);
    expect(hello.subarray(4, 13).toString('latin1')).toBe('\x01HAULPRB1');
    second.proc.stdin.end();
    expect((await second.proc.exit).code).not.toBe(0); // EOF before BACKUP: the probe says so and ends

    // Damaged: the check fails inside the same command, which then answers as the discovery.
    fs.appendFileSync(expectedPath, 'X');
    execs.length = 0;
    const third = await startCachedProbe(conn, { probeDir }, ['--serve']);
    expect(third).toMatchObject({ path: expectedPath, uploaded: true });
    expect(execs).toHaveLength(2);
    expect(fs.readFileSync(expectedPath).equals(probeBytes)).toBe(true);
  });

  it('the installed probe passes --selftest when run over SSH', async () => {
    const conn = await connect(PROBE);
    const installed = await ensureProbe(conn, { probeDir });
    const r = await conn.run(probeCommand(installed, ['--selftest']));
    expect(r.stderr.toString()).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/all passed: 0 failures/);
  });

  it('honours XDG_CACHE_HOME (as sshd SetEnv sets it) and an explicit remote cache directory', async () => {
    const conn = await connect(XDG);
    const installed = await ensureProbe(conn, { probeDir });
    expect(installed.path).toBe(path.join(tmp, 'xdg-cache', 'haul', `haul-probe-${probeSha}`));
    expect(installed.uploaded).toBe(true);

    const explicit = path.join(tmp, 'explicit-cache');
    fs.mkdirSync(explicit);
    fs.chownSync(explicit, users.get(XDG)!.uid, users.get(XDG)!.gid);
    const there = await ensureProbe(conn, { probeDir, remoteCacheDir: explicit });
    expect(there.path).toBe(path.join(explicit, 'haul', `haul-probe-${probeSha}`));
    expect(fs.readFileSync(there.path).equals(probeBytes)).toBe(true);
  });

  it('without sha256sum on the client, compares sizes and lets --version decide', async () => {
    resetCache(NOHASH);
    const conn = await connect(NOHASH);
    expect((await conn.run('command -v sha256sum')).code).not.toBe(0);
    const first = await ensureProbe(conn, { probeDir });
    expect(first.uploaded).toBe(true);
    const second = await ensureProbe(conn, { probeDir });
    expect(second.uploaded).toBe(false);
    expect(second.version).toMatch(/^haul-probe /); // the cached copy was run to confirm it
    // A truncated copy has the wrong size: replaced.
    fs.truncateSync(first.path, 1000);
    expect((await ensureProbe(conn, { probeDir })).uploaded).toBe(true);
    expect(fs.readFileSync(first.path).equals(probeBytes)).toBe(true);
    // Same size but broken so that it does not run (here: its ELF header zeroed): replaced.
    const fd = fs.openSync(first.path, 'r+');
    fs.writeSync(fd, Buffer.alloc(64), 0, 64, 0);
    fs.closeSync(fd);
    expect((await ensureProbe(conn, { probeDir })).uploaded).toBe(true);
    expect(fs.readFileSync(first.path).equals(probeBytes)).toBe(true);
  });

  it('names the missing build and how to make it when there is no probe for the client\'s architecture', async () => {
    const conn = await connect(PROBE);
    const onlyOther = path.join(tmp, 'only-other-arch');
    fs.mkdirSync(onlyOther);
    const other = arch === 'x86_64' ? 'aarch64' : 'x86_64';
    fs.writeFileSync(path.join(onlyOther, `haul-probe-${other}`), 'not really');
    const err = await failure(ensureProbe(conn, { probeDir: onlyOther }));
    expect(err.code).toBe('UnsupportedArchitecture');
    expect(err.message).toContain(`client "client-${PROBE}"`);
    expect(err.message).toContain(`there is no probe for ${arch} in ${onlyOther} (available: ${other})`);
    expect(err.message).toContain('bash probe/build.sh');
  });

  describe.skipIf(tmpfsSkipReason() !== undefined)(`on special file systems${tmpfsSkipReason() ? ` (skipped: ${tmpfsSkipReason()})` : ''}`, () => {
    it('a noexec cache directory fails with NoExec, suggesting XDG_CACHE_HOME', async () => {
      const cache = resetCache(NOEXEC);
      mounts.push(cache);
      mountTmpfs(cache, { size: '4m', noexec: true, owner: users.get(NOEXEC)! });
      const conn = await connect(NOEXEC);
      const err = await failure(ensureProbe(conn, { probeDir }));
      expect(err.code).toBe('NoExec');
      const final = path.join(cache, 'haul', `haul-probe-${probeSha}`);
      expect(err.message).toContain(`client "client-${NOEXEC}" (${NOEXEC}@127.0.0.1:${sshd.port}): the probe was copied to ${final} but cannot be run there`);
      expect(err.message).toContain('noexec');
      expect(err.message).toContain(`Set XDG_CACHE_HOME for user ${NOEXEC}`);
      expect(err.message).toMatch(/Permission denied/);
      // The copy that cannot run is not left to look cached: the next attempt fails the same way.
      expect(fs.existsSync(final)).toBe(false);
      expect((await failure(ensureProbe(conn, { probeDir }))).code).toBe('NoExec');
      unmount(cache);
    });

    it('a cached probe whose file system became noexec after the check: exit 126 becomes the same NoExec error', async () => {
      const cache = resetCache(STALE);
      mounts.push(cache);
      mountTmpfs(cache, { size: '4m', owner: users.get(STALE)! });
      const conn = await connect(STALE);
      const installed = await ensureProbe(conn, { probeDir });
      expect(installed.uploaded).toBe(true);
      // Between the installer's check and the job's exec, the cache is remounted noexec.
      execFileSync('mount', ['-o', 'remount,noexec', cache]);
      const log: string[] = [];
      const running = await startProbe(conn, installed, '--serve', (line) => log.push(line));
      const exit = await running.exitAfterFailure();
      expect(exit).toEqual({ code: 126, signal: null });
      const err = running.execFailure(exit)!;
      expect(err.code).toBe('NoExec');
      expect(err.message).toMatch(
        new RegExp(
          `^client "client-${STALE}" \\(${STALE}@127\\.0\\.0\\.1:${sshd.port}\\): the probe is cached at ${installed.path} but cannot be run there: that file system is probably mounted noexec\\. ` +
            `Set XDG_CACHE_HOME for user ${STALE} on the client to a directory on a file system mounted with exec rights .*, then run the job again\\. ` +
            `The client said: "[^"]*${installed.path}: Permission denied"$`,
        ),
      );
      expect(log).toEqual([expect.stringMatching(new RegExp(`^probe: .*${installed.path}: Permission denied$`))]);
      // Any other failure is not this one.
      expect(running.execFailure({ code: 4, signal: null })).toBeUndefined();
      // The quick start (check and run in one command) does not start it: on a noexec mount the
      // shell's -x test fails, so it answers as the discovery, and the upload's --version gives NoExec.
      const quick = await failure(startCachedProbe(conn, { probeDir }, ['--serve']));
      expect(quick.code).toBe('NoExec');
      expect(quick.message).toContain(`the probe was copied to ${installed.path} but cannot be run there`);
      unmount(cache);
    });

    it('a full disk fails with ClientDiskFull naming the client, and leaves no partial file', async () => {
      const cache = resetCache(FULL);
      mounts.push(cache);
      mountTmpfs(cache, { size: '100k', owner: users.get(FULL)! });
      const conn = await connect(FULL);
      const err = await failure(ensureProbe(conn, { probeDir }));
      expect(err.code).toBe('ClientDiskFull');
      expect(err.message).toContain(`client "client-${FULL}" (${FULL}@127.0.0.1:${sshd.port}): no space left for the probe in ${path.join(cache, 'haul')}`);
      expect(err.message).toContain('No space left on device');
      expect(fs.readdirSync(path.join(cache, 'haul'))).toEqual([]);
      // The connection survives the failed upload.
      expect((await conn.run('echo alive')).stdout.toString()).toBe('alive\n');
      unmount(cache);
    });
  });

  it('leaves no process of the client users behind', async () => {
    for (const c of open.splice(0)) await c.close();
    await new Promise((r) => setTimeout(r, 200));
    for (const u of USERS) {
      expect(spawnSync('pgrep', ['-u', u, '-f', 'haul-probe']).status).toBe(1);
    }
  });
});
