// Puts the static probe on a client, once per probe build.
//
// The client keeps the probe in its cache directory, `${XDG_CACHE_HOME:-$HOME/.cache}/haul/`,
// under a name that carries the binary's SHA-256 (`haul-probe-<sha256hex>`), so a new build
// never collides with a running old one and a cached copy is recognised by name and content.
//
// Round trips: ensureProbe costs one command for a cached, intact probe (learn the architecture
// and cache directory, list cached probes with their sizes and hashes); startCachedProbe folds
// that check into the command that runs the probe, so a backup's usual case is one command in
// all. A missing or damaged probe costs a second: upload on stdin, check size and hash, move
// into place, run `--version`, delete older versions, all in one shell. Without sha256sum on
// the client only the size is compared and `--version` decides.
//
// Everything the client prints is parsed strictly and bounded: the client is not trusted.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { Readable } from 'node:stream';
import { posixShell, type RemoteProcess, type RunResult, type SshConnection } from './ssh-connection.js';

export type ProbeArch = 'x86_64' | 'aarch64';

/** `uname -m` values and the probe build that runs there. */
const ARCHES: Record<string, ProbeArch> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
};

export interface EnsureProbeOptions {
  /** The local folder with the built probes, `haul-probe-<arch>` (probe/dist). */
  probeDir: string;
  /**
   * The client directory for the probe cache, instead of `${XDG_CACHE_HOME:-$HOME/.cache}`.
   * An absolute path; the probe goes into its `haul/` subfolder.
   */
  remoteCacheDir?: string;
  /** Limit for each remote command (the upload included). Default 120 s. */
  timeoutMs?: number;
}

export interface InstalledProbe {
  /** Absolute path of the probe on the client. */
  path: string;
  arch: ProbeArch;
  /** SHA-256 of the binary, hex. */
  sha256: string;
  /** Bytes of the binary. */
  size: number;
  /** True when it was copied in this call; false when the cached copy was intact. */
  uploaded: boolean;
  /** The probe's `--version` line when it was run in this call. */
  version?: string;
}

/** Characters allowed in a remote path we put into a shell command (inside double quotes). */
const SAFE_PATH = /^\/[A-Za-z0-9._/+,:@%=~ -]*$/;

/** Arguments we put into a shell command unquoted. */
const SAFE_ARG = /^[A-Za-z0-9._/+,:@%=-]+$/;

/** A shell command that runs the installed probe with `args`, whatever the login shell. */
export function probeCommand(probe: Pick<InstalledProbe, 'path'>, args: string[]): string {
  return posixShell(`exec "${checkedPath(probe.path)}"${shellArgs(args)}`);
}

/** ` a b c`, for arguments put into a shell command unquoted (checked against SAFE_ARG). */
function shellArgs(args: string[]): string {
  for (const a of args) {
    if (!SAFE_ARG.test(a)) throw new HaulError('InvalidArgument', `Probe argument ${JSON.stringify(a)} contains characters that are not passed to a remote shell.`);
  }
  return args.map((a) => ` ${a}`).join('');
}

function checkedPath(p: string): string {
  if (!SAFE_PATH.test(p) || p.includes('/../') || p.endsWith('/..')) {
    throw new HaulError('InvalidArgument', `The client path ${JSON.stringify(p)} contains characters Haul does not pass to a remote shell.`);
  }
  return p;
}

interface Discovery {
  os: string;
  machine: string;
  cacheDir: string;
  hasSha256sum: boolean;
  /** Cached probes: file name → size, executable, sha256 (when hashed). */
  cached: Map<string, { size: number; executable: boolean; sha256: string | undefined }>;
}

/** Sets `c` to the client's cache directory. */
function cacheDirScript(remoteCacheDir: string | undefined): string {
  return remoteCacheDir
    ? `c="${checkedPath(remoteCacheDir)}"`
    : // XDG says a relative XDG_CACHE_HOME is to be ignored.
      'c="${XDG_CACHE_HOME:-}"; case "$c" in /*) ;; *) c="${HOME:-}/.cache" ;; esac';
}

/** What the discovery prints, `c` being set. */
function discoveryBody(): string {
  return [
    'echo "os $(uname -s)"',
    'echo "machine $(uname -m)"',
    'echo "cache $c"',
    'if command -v sha256sum >/dev/null 2>&1; then h=1; else h=0; fi',
    'echo "sha256sum $h"',
    'for f in "$c"/haul/haul-probe-*; do if [ -f "$f" ]; then s=$(wc -c < "$f"); x=-; [ -x "$f" ] && x=x; d=-; if [ $h = 1 ]; then d=$(sha256sum < "$f"); d=${d%% *}; fi; echo "probe ${f##*/} $s $x $d"; fi; done',
    'echo end',
  ].join('; ');
}

function discoveryScript(remoteCacheDir: string | undefined): string {
  return posixShell(`${cacheDirScript(remoteCacheDir)}; ${discoveryBody()}`);
}

function parseDiscovery(r: RunResult, label: string, user: string): Discovery {
  const text = r.stdout.toString('utf8');
  const lines = text.split('\n');
  const get = (key: string): string | undefined => {
    const line = lines.find((l) => l.startsWith(`${key} `));
    return line?.slice(key.length + 1);
  };
  const os = get('os');
  const machine = get('machine');
  const cacheDir = get('cache');
  if (r.code !== 0 || !lines.includes('end') || os === undefined || machine === undefined || cacheDir === undefined) {
    const said = (r.stderr.toString('utf8') + text).trim().slice(0, 300);
    throw new HaulError(
      'ProbeUploadFailed',
      `${label}: a shell command as ${user} did not run as expected (exit ${r.code ?? r.signal ?? 'unknown'}${said ? `: ${JSON.stringify(said)}` : ''}). ` +
        `The user needs a working login shell (for example /bin/sh, not nologin) and /bin/sh on the client.`,
    );
  }
  const cached = new Map<string, { size: number; executable: boolean; sha256: string | undefined }>();
  for (const line of lines) {
    const m = /^probe (haul-probe-[0-9a-f]{64}) +(\d+) ([x-]) ([0-9a-f]{64}|-)$/.exec(line.replace(/ {2,}/g, ' '));
    if (m) cached.set(m[1]!, { size: Number(m[2]), executable: m[3] === 'x', sha256: m[4] === '-' ? undefined : m[4] });
  }
  return { os: os.trim(), machine: machine.trim(), cacheDir, hasSha256sum: get('sha256sum') === '1', cached };
}

interface LocalProbe {
  file: string;
  bytes: Buffer;
  sha256: string;
}

/** The local builds' hashes and sizes, by file, kept while the file's size and mtime stay the same. */
const localBuilds = new Map<string, { mtimeMs: number; size: number; sha256: string }>();

/** The SHA-256 and size of the local build for `arch`, or undefined when there is none. */
function localBuild(probeDir: string, arch: ProbeArch): { sha256: string; size: number } | undefined {
  const file = path.join(probeDir, `haul-probe-${arch}`);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  const known = localBuilds.get(file);
  if (known && known.mtimeMs === st.mtimeMs && known.size === st.size) return known;
  const build = { mtimeMs: st.mtimeMs, size: st.size, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex') };
  localBuilds.set(file, build);
  return build;
}

function loadLocalProbe(probeDir: string, arch: ProbeArch, label: string, machine: string): LocalProbe {
  const file = path.join(probeDir, `haul-probe-${arch}`);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    let available: string[] = [];
    try {
      available = fs.readdirSync(probeDir).filter((n) => /^haul-probe-[a-z0-9_]+$/.test(n)).map((n) => n.slice('haul-probe-'.length));
    } catch {
      // the folder itself is missing
    }
    throw new HaulError(
      'UnsupportedArchitecture',
      `${label} runs Linux on ${machine}, but there is no probe for ${arch} in ${probeDir} ` +
        `(available: ${available.length > 0 ? available.join(', ') : 'none'}). Build the probes with: bash probe/build.sh` +
        (arch === 'aarch64' ? ' (the aarch64 probe needs the cross compiler: apt-get install gcc-aarch64-linux-gnu)' : ''),
    );
  }
  return { file, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Stage exit codes of the upload script; anything else comes from running the probe. */
const STAGE = { mkdir: 90, write: 91, size: 92, hash: 93, install: 94 } as const;
const NO_SPACE = /No space left on device|Disk quota exceeded/i;

/**
 * Makes sure the client has this build of the probe and returns where it is. Uploads it when
 * missing or damaged, verifies it runs, and removes older cached versions.
 */
export async function ensureProbe(conn: SshConnection, options: EnsureProbeOptions): Promise<InstalledProbe> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return ensureProbeFrom(conn, options, await conn.run(discoveryScript(options.remoteCacheDir), { timeoutMs, maxOutputBytes: 64 * 1024 }));
}

/** A cached probe the client started at once (startCachedProbe), its output ready to read. */
export interface StartedProbe {
  probe: InstalledProbe;
  proc: RemoteProcess;
}

/** The line the quick start prints, with the probe's path, before the probe's own output. */
const STARTING = 'haul-probe-starting ';

/**
 * The usual case in one round trip instead of two: one command runs this build of the probe at
 * once when the client's cached copy is there and intact (hash checked), printing a marker line
 * first; otherwise it prints the discovery and ends, and this goes on as ensureProbe does
 * (uploading the probe if needed), returning where the probe is for the caller to start.
 */
export async function startCachedProbe(conn: SshConnection, options: EnsureProbeOptions, args: string[]): Promise<StartedProbe | InstalledProbe> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const builds = { x86_64: localBuild(options.probeDir, 'x86_64'), aarch64: localBuild(options.probeDir, 'aarch64') };
  const name = (arch: ProbeArch) => (builds[arch] ? `haul-probe-${builds[arch].sha256}` : '');
  const quick = [
    cacheDirScript(options.remoteCacheDir),
    `case "$(uname -m)" in x86_64|amd64) n=${name('x86_64')} ;; aarch64|arm64) n=${name('aarch64')} ;; *) n= ;; esac`,
    'f="$c/haul/$n"',
    // The same conditions as the discovery's "cached and intact": Linux, executable, its SHA-256 is its name.
    `if [ -n "$n" ] && [ "$(uname -s)" = Linux ] && [ -f "$f" ] && [ -x "$f" ] && command -v sha256sum >/dev/null 2>&1; then h=$(sha256sum < "$f"); if [ "\${h%% *}" = "\${n#haul-probe-}" ]; then echo "${STARTING}$f"; exec "$f"${shellArgs(args)}; fi; fi`,
  ].join('; ');
  const script = `${quick}; ${discoveryBody()}`;
  const proc = await conn.exec(posixShell(script));
  const first = await firstLine(proc.stdout, 64 * 1024);
  const line = first.line.toString('utf8');
  if (first.complete && line.startsWith(STARTING)) {
    const probePath = line.slice(STARTING.length);
    const sha256 = probePath.slice(probePath.lastIndexOf('/haul-probe-') + '/haul-probe-'.length);
    const arch = (['x86_64', 'aarch64'] as const).find((a) => builds[a]?.sha256 === sha256);
    if (arch && SAFE_PATH.test(probePath)) {
      if (first.rest.length > 0) proc.stdout.unshift(first.rest);
      return { probe: { path: probePath, arch, sha256, size: builds[arch]!.size, uploaded: false }, proc };
    }
    // A marker we did not ask for: not our shell's doing. Stop it and take the long way.
    proc.stop();
    return ensureProbe(conn, options);
  }
  // No quick start: what was read is the start of the discovery's output.
  proc.stdin.end();
  proc.stdout.unshift(first.complete ? Buffer.concat([first.line, Buffer.from('\n'), first.rest]) : first.line);
  return ensureProbeFrom(conn, options, await conn.outputOf(proc, script, { timeoutMs, maxOutputBytes: 64 * 1024 }));
}

/** The first line of `stream` (without its newline) and what came after it in the same reads; the stream is left paused. */
function firstLine(stream: Readable, max: number): Promise<{ line: Buffer; rest: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (value: { line: Buffer; rest: Buffer; complete: boolean } | Error) => {
      stream.pause();
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', done);
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl >= 0) done({ line: buf.subarray(0, nl), rest: buf.subarray(nl + 1), complete: true });
      else if (buf.length > max) done({ line: buf, rest: Buffer.alloc(0), complete: false });
    };
    const onEnd = () => done({ line: buf, rest: Buffer.alloc(0), complete: false });
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', done);
  });
}

async function ensureProbeFrom(conn: SshConnection, options: EnsureProbeOptions, discovered: RunResult): Promise<InstalledProbe> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const label = conn.label;
  const found = parseDiscovery(discovered, label, conn.user);

  if (found.os !== 'Linux') {
    throw new HaulError('UnsupportedArchitecture', `${label} runs ${found.os || 'an unknown system'} on ${found.machine}; the Haul probe runs on Linux only (x86_64 and aarch64).`);
  }
  const arch = ARCHES[found.machine];
  if (!arch) {
    throw new HaulError('UnsupportedArchitecture', `${label} runs Linux on ${found.machine || 'an unknown machine'}; Haul has probes for x86_64 and aarch64 only.`);
  }
  if (!SAFE_PATH.test(found.cacheDir) || found.cacheDir.includes('/../')) {
    throw new HaulError(
      'ProbeUploadFailed',
      `${label}: the cache directory ${JSON.stringify(found.cacheDir)} of ${conn.user} is not a plain absolute path. ` +
        `Set XDG_CACHE_HOME for ${conn.user} on the client to an absolute path of letters, digits and ._-/ characters, or give the client a probe directory.`,
    );
  }
  const local = loadLocalProbe(options.probeDir, arch, label, found.machine);
  const dir = `${found.cacheDir.replace(/\/+$/, '')}/haul`;
  const name = `haul-probe-${local.sha256}`;
  const finalPath = `${dir}/${name}`;
  const result = { path: finalPath, arch, sha256: local.sha256, size: local.bytes.length };

  const cached = found.cached.get(name);
  if (cached && cached.executable && cached.size === local.bytes.length) {
    if (found.hasSha256sum && cached.sha256 === local.sha256) return { ...result, uploaded: false };
    if (!found.hasSha256sum) {
      // Only the size could be compared: let the probe itself show that it runs. If it does
      // not, upload it again; a cache that cannot run programs then fails with a clear error.
      const r = await conn.run(posixShell(`echo ran; exec "${finalPath}" --version </dev/null`), { timeoutMs, maxOutputBytes: 64 * 1024 });
      try {
        const version = checkRun(r, { label, user: conn.user, arch, finalPath, dir, size: local.bytes.length });
        return { ...result, uploaded: false, version };
      } catch {
        // fall through to the upload
      }
    }
  }

  const tmp = `${dir}/.${name}.tmp-${randomBytes(6).toString('hex')}`;
  const script = [
    'umask 077',
    `d="${dir}"; t="${tmp}"; f="${finalPath}"`,
    `mkdir -p "$d" || exit ${STAGE.mkdir}`,
    `cat > "$t" || { rm -f "$t"; exit ${STAGE.write}; }`,
    // A dropped connection ends stdin early; a short file must never be installed.
    `s=$(wc -c < "$t"); [ "$s" -eq ${local.bytes.length} ] || { rm -f "$t"; exit ${STAGE.size}; }`,
    ...(found.hasSha256sum ? [`h=$(sha256sum < "$t"); [ "\${h%% *}" = "${local.sha256}" ] || { rm -f "$t"; exit ${STAGE.hash}; }`] : []),
    `chmod 700 "$t" && mv -f "$t" "$f" || { rm -f "$t"; exit ${STAGE.install}; }`,
    'echo ran',
    // A probe that does not run (noexec, wrong binary) must not look cached next time.
    '"$f" --version </dev/null; r=$?; [ $r -eq 0 ] || { rm -f "$f"; exit $r; }',
    // Older versions are of no further use; a running one keeps its inode until it exits.
    'for o in "$d"/haul-probe-*; do [ "$o" = "$f" ] || rm -f "$o"; done',
    // Uploads that a dropped connection left behind (not the ones that may be running now).
    'find "$d" -maxdepth 1 -name ".haul-probe-*.tmp-*" -mmin +60 -exec rm -f {} + 2>/dev/null',
    'exit 0',
  ].join('; ');
  let r: RunResult;
  try {
    r = await conn.run(posixShell(script), { stdin: local.bytes, timeoutMs, maxOutputBytes: 64 * 1024 });
  } catch (err) {
    // Keep the code (a lost connection is worth a retry), say what was going on.
    const code = isHaulError(err) ? err.code : 'ProbeUploadFailed';
    throw new HaulError(code, `${label}: uploading the probe (${local.bytes.length} bytes) to ${dir} failed: ${(err as Error).message}`, { cause: err });
  }
  const version = checkRun(r, { label, user: conn.user, arch, finalPath, dir, size: local.bytes.length });
  return { ...result, uploaded: true, version };
}

/** Turns the result of a script that echoes `ran` and then runs `probe --version` into the version, or a clear error. */
function checkRun(r: RunResult, c: { label: string; user: string; arch: ProbeArch; finalPath: string; dir: string; size: number }): string {
  const out = r.stdout.toString('utf8');
  const err = r.stderr.toString('utf8').trim().slice(0, 500);
  const said = err ? ` The client said: ${JSON.stringify(err)}` : '';
  const ran = out.split('\n').includes('ran');
  if (!ran) {
    if (NO_SPACE.test(err)) {
      throw new HaulError(
        'ClientDiskFull',
        `${c.label}: no space left for the probe in ${c.dir} (the client's disk, or ${c.user}'s quota, is full). Free some space on the client, ` +
          `or set XDG_CACHE_HOME for ${c.user} to a directory on a file system with room; the probe needs ${Math.ceil(c.size / 1024)} KiB.${said}`,
      );
    }
    const stage =
      r.code === STAGE.mkdir ? `creating ${c.dir}` :
      r.code === STAGE.write ? 'writing the probe' :
      r.code === STAGE.size ? 'receiving the probe (it arrived incomplete)' :
      r.code === STAGE.hash ? 'receiving the probe (its SHA-256 did not match)' :
      r.code === STAGE.install ? `installing the probe as ${c.finalPath}` :
      `a shell command (exit ${r.code ?? r.signal ?? 'unknown'})`;
    throw new HaulError('ProbeUploadFailed', `${c.label}: ${stage} failed as user ${c.user}. Check that ${c.user} can write to ${c.dir}.${said}`);
  }
  if (r.code === 0) {
    const line = out.split('\n').find((l) => l.startsWith('haul-probe ')) ?? '';
    const m = /^haul-probe (\S+) \(([a-z0-9_]+)[,)]/.exec(line);
    if (m && m[2] === c.arch) return line.trim();
    throw new HaulError('ProbeUploadFailed', `${c.label}: the probe ${c.finalPath} ran but printed an unexpected version line ${JSON.stringify(out.slice(0, 200))} (expected haul-probe … (${c.arch}…)).`);
  }
  if (r.code === 126 && /Exec format error|cannot execute binary/i.test(err)) {
    throw new HaulError('UnsupportedArchitecture', `${c.label} reported ${c.arch}, but the ${c.arch} probe cannot run there (exec format error).${said}`);
  }
  if (r.code === 126 || /Permission denied/i.test(err)) throw noExecError({ ...c, copied: true }, err);
  throw new HaulError('ProbeUploadFailed', `${c.label}: the probe ${c.finalPath} did not run (exit ${r.code ?? r.signal ?? 'unknown'}).${said}`);
}

/**
 * The probe is on the client but the shell cannot execute it (exit 126): its directory is on a
 * file system mounted noexec, now or since the probe was cached there.
 */
export function noExecError(c: { label: string; user: string; finalPath: string; copied: boolean }, clientSaid: string): HaulError {
  const said = clientSaid ? ` The client said: ${JSON.stringify(clientSaid)}` : '';
  return new HaulError(
    'NoExec',
    `${c.label}: the probe ${c.copied ? 'was copied to' : 'is cached at'} ${c.finalPath} but cannot be run there: that file system is probably mounted noexec. ` +
      `Set XDG_CACHE_HOME for user ${c.user} on the client to a directory on a file system mounted with exec rights ` +
      `(OpenSSH 8.7 or later: "SetEnv XDG_CACHE_HOME=/var/cache/haul-${c.user}" in a "Match User ${c.user}" block of sshd_config; ` +
      `create that directory owned by ${c.user}), then run the job again.${said}`,
  );
}
