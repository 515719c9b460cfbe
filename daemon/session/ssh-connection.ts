// One outgoing SSH connection from the daemon to a client machine (ssh2, pure JavaScript).
//
// The client's host key is its identity (security invariant 4): with a pinned fingerprint the
// connection is refused during key exchange unless the client shows exactly that key; without
// one, the key seen is returned so the caller can pin it on first contact (trust on first use).
// Every way a connection can fail becomes a HaulError that names the client and says what to
// check, so a job log reads well without the source.
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import ssh2 from 'ssh2';
import type { Algorithms, Client as SshClient, ClientChannel, ConnectConfig, NegotiatedAlgorithms } from 'ssh2';
import { HaulError } from '../../shared/errors.js';
import { sshFingerprint, sshKeyType, type ServerIdentity } from './server-identity.js';

const { Client } = ssh2;

export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
export const DEFAULT_KEEPALIVE_INTERVAL_MS = 15_000;
export const DEFAULT_KEEPALIVE_COUNT_MAX = 4;
export const DEFAULT_CLOSE_GRACE_MS = 5_000;

/**
 * ssh2's defaults minus what relies on SHA-1: `ssh-rsa` host key signatures and the hmac-sha1
 * MACs. Everything else stays as ssh2 orders it: curve25519 key exchange first, aes128-gcm
 * first (AES-NI), then aes256-gcm, AES-CTR with SHA-2 MACs and chacha20-poly1305; Ed25519,
 * ECDSA and rsa-sha2-256/512 host keys. Its defaults hold no CBC cipher and no SHA-1 key
 * exchange. An OpenSSH older than 7.2 offering only an RSA host key cannot connect, on purpose.
 */
export const ALGORITHMS: Algorithms = {
  // (@types/ssh2 wants all three keys; empty append/prepend change nothing.)
  serverHostKey: { append: [], prepend: [], remove: ['ssh-rsa', 'ssh-dss'] },
  hmac: { append: [], prepend: [], remove: ['hmac-sha1', 'hmac-sha1-etm@openssh.com'] },
};

export interface ConnectTimeouts {
  /** From the TCP connect to a logged-in session: DNS, TCP, key exchange, authentication. Default 15 s. */
  connectMs?: number;
  /** SSH keepalive interval; a connection that misses `keepaliveCountMax` in a row is dropped. Default 15 s. */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** How long `close()` waits for the client's side of the TCP close before it cuts the socket. Default 5 s. */
  closeGraceMs?: number;
}

export interface ConnectOptions {
  host: string;
  port?: number;
  /** The Unix user on the client the daemon logs in as. */
  user: string;
  identity: ServerIdentity;
  /** The client's pinned host key fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it. */
  pinnedHostKey?: string;
  /** Without a pin: accept and report the key seen (default), or refuse with HostKeyUnknown. */
  trustOnFirstUse?: boolean;
  /** The client's name in Haul, for messages and the re-pin command. Defaults to the host. */
  clientName?: string;
  timeouts?: ConnectTimeouts;
}

export interface RemoteExit {
  /** The exit status, or null when the command died of a signal or the channel closed without one. */
  code: number | null;
  /** `SIGKILL`, `SIGTERM`, … when the command died of a signal. */
  signal: string | null;
}

/**
 * A command running on the client. Its stdout (and stderr, if it writes much) must be read for
 * it to finish: `exit` resolves when the channel closes, which follows the end of stdout.
 */
export interface RemoteProcess {
  readonly channel: ClientChannel;
  /** The command's stdin; `end()` it to send EOF. Already piped when `stdin` was given to exec. */
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves (never rejects) when the channel has closed. */
  readonly exit: Promise<RemoteExit>;
  /** Asks the client to end the command (SIGTERM, where sshd supports it) and closes the channel. */
  stop(): void;
}

export interface RunResult extends RemoteExit {
  stdout: Buffer;
  stderr: Buffer;
  /** True when output beyond `maxOutputBytes` was thrown away. */
  truncated: boolean;
}

export interface RunOptions {
  stdin?: Readable | Buffer;
  /** Output kept per stream; the rest is read and discarded. Default 1 MiB: clients are untrusted. */
  maxOutputBytes?: number;
  /** Stops the command and fails with ConnectionLost when it has not finished by then. */
  timeoutMs?: number;
}

const FINGERPRINT_RE = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Whether `s` looks like an OpenSSH SHA-256 fingerprint (`SHA256:` + 43 base64 characters). */
export function isFingerprint(s: string): boolean {
  return FINGERPRINT_RE.test(s);
}

export class SshConnection {
  /** The client's host key fingerprint seen in this connection: pin it on first contact. */
  readonly hostKeyFingerprint: string;
  /** The host key's type, e.g. `ssh-ed25519`. */
  readonly hostKeyType: string;
  /** True when no pin was given and the key was accepted on first use. */
  readonly firstContact: boolean;
  /** `user@host:port`, or the client name with it, for messages. */
  readonly label: string;
  /** Key exchange, host key and cipher algorithms of the connection (for the job log). */
  readonly negotiated: NegotiatedAlgorithms | undefined;
  private closedFlag = false;
  private closing = false;
  private lastError: Error | undefined;
  private readonly closedPromise: Promise<void>;

  /** @internal use connectToClient */
  constructor(
    /** The underlying ssh2 client, for what this class does not wrap. */
    readonly ssh: SshClient,
    readonly options: Readonly<ConnectOptions> & { port: number },
    seen: { fingerprint: string; type: string },
    negotiated?: NegotiatedAlgorithms,
  ) {
    this.negotiated = negotiated;
    this.hostKeyFingerprint = seen.fingerprint;
    this.hostKeyType = seen.type;
    this.firstContact = options.pinnedHostKey === undefined;
    this.label = describe(options);
    this.closedPromise = new Promise((resolve) => {
      ssh.once('close', () => {
        this.closedFlag = true;
        resolve();
      });
    });
    ssh.on('error', (err: Error) => {
      this.lastError = err;
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  get host(): string {
    return this.options.host;
  }

  get port(): number {
    return this.options.port;
  }

  get user(): string {
    return this.options.user;
  }

  /**
   * Runs `command` through the client user's login shell on its own channel. With `stdin`,
   * that stream (or buffer) is piped to the command and EOF sent after it.
   */
  exec(command: string, options: { stdin?: Readable | Buffer } = {}): Promise<RemoteProcess> {
    if (this.closedFlag) return Promise.reject(this.lostError(command));
    return new Promise<RemoteProcess>((resolve, reject) => {
      const onChannel = (err: Error | undefined, channel: ClientChannel): void => {
        if (err) {
          reject(
            this.closedFlag
              ? this.lostError(command, err)
              : new HaulError('ConnectionLost', `${this.label}: the client refused to start a command (${err.message}). Check MaxSessions in the client's sshd_config.`, { cause: err }),
          );
          return;
        }
        resolve(wrapChannel(channel, options.stdin));
      };
      try {
        this.ssh.exec(command, onChannel);
      } catch (err) {
        reject(this.lostError(command, err));
      }
    });
  }

  /** Runs `command` to its end and collects its output (bounded). stdin gets EOF after `stdin`, or at once. */
  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    const proc = await this.exec(command, { stdin: options.stdin ?? Buffer.alloc(0) });
    return this.outputOf(proc, command, options);
  }

  /** What `run` does once the command has started: collects its output (bounded) until it exits. */
  async outputOf(proc: RemoteProcess, command: string, options: Omit<RunOptions, 'stdin'> = {}): Promise<RunResult> {
    const max = options.maxOutputBytes ?? 1024 * 1024;
    let truncated = false;
    const collect = (stream: Readable): Buffer[] => {
      const parts: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        if (size + chunk.length > max) {
          truncated = true;
          chunk = chunk.subarray(0, Math.max(0, max - size));
        }
        if (chunk.length > 0) parts.push(chunk);
        size += chunk.length;
      });
      // A stream paused by an earlier reader (startCachedProbe's first line) flows again.
      stream.resume();
      return parts;
    };
    const out = collect(proc.stdout);
    const err = collect(proc.stderr);
    let timer: NodeJS.Timeout | undefined;
    // On timeout: ask the command to stop, and fail at once, without waiting for the client.
    const timeout = new Promise<never>((_, reject) => {
      if (options.timeoutMs === undefined) return;
      timer = setTimeout(() => {
        proc.stop();
        reject(new HaulError('ConnectionLost', `${this.label}: a command did not finish within ${seconds(options.timeoutMs ?? 0)} and was stopped (${summarize(command)}).`));
      }, options.timeoutMs);
    });
    const done = (async (): Promise<RunResult> => {
      const exit = await proc.exit;
      await Promise.all([finished(proc.stdout).catch(() => {}), finished(proc.stderr).catch(() => {})]);
      // sshd always reports an exit status or signal; a channel closed without either was cut off.
      if (exit.code === null && exit.signal === null) throw this.lostError(command);
      return { ...exit, stdout: Buffer.concat(out), stderr: Buffer.concat(err), truncated };
    })();
    try {
      return await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
      done.catch(() => {});
    }
  }

  /**
   * Ends the connection; resolves when it is closed. A peer that never finishes the TCP close
   * (a stalled link, a client that stops reading) must not hold the job that ends it, nor a
   * cancel waiting for that job: after a grace period the socket is cut.
   */
  close(): Promise<void> {
    if (this.closedFlag || this.closing) return this.closedPromise;
    this.closing = true;
    this.ssh.end();
    const grace = setTimeout(() => socketOf(this.ssh)?.destroy(), this.options.timeouts?.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS);
    grace.unref();
    void this.closedPromise.then(() => clearTimeout(grace));
    return this.closedPromise;
  }

  private lostError(command: string, cause?: unknown): HaulError {
    const why = this.lastError ? ` (${this.lastError.message})` : '';
    return new HaulError('ConnectionLost', `The SSH connection to ${this.label} was lost${why} while running ${summarize(command)}. Run the job again; if it keeps happening, check the network and the client's sshd log.`, { cause: cause ?? this.lastError });
  }
}

/**
 * ssh2's socket: its `destroy()` does nothing once `end()` has made the socket unwritable, so
 * cutting a connection whose close hangs needs the socket itself.
 */
function socketOf(ssh: SshClient): Socket | undefined {
  return (ssh as unknown as { _sock?: Socket })._sock;
}

function wrapChannel(channel: ClientChannel, stdin: Readable | Buffer | undefined): RemoteProcess {
  let exitInfo: RemoteExit = { code: null, signal: null };
  channel.on('exit', (code: number | null, signal?: string) => {
    exitInfo = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
  });
  // Errors show up as a closed channel (exit code null); an unhandled 'error' would crash the daemon.
  channel.on('error', () => {});
  channel.stderr.on('error', () => {});
  const exit = new Promise<RemoteExit>((resolve) => channel.once('close', () => resolve(exitInfo)));
  if (Buffer.isBuffer(stdin)) {
    channel.end(stdin);
  } else if (stdin) {
    stdin.on('error', () => channel.close());
    stdin.pipe(channel);
    void exit.then(() => {
      stdin.unpipe(channel);
      stdin.destroy();
    });
  }
  return {
    channel,
    stdin: channel,
    stdout: channel,
    stderr: channel.stderr,
    exit,
    stop() {
      sendSignal(channel, 'TERM');
      channel.close();
    },
  };
}

/**
 * Sends a signal request. ssh2's `channel.signal()` stays silent once stdin is at EOF (as it is
 * for every `run`), although the protocol allows it; then the request is sent directly. OpenSSH
 * delivers it to the command (since 7.9); without it, sshd would keep the channel open until
 * the command ends by itself.
 */
function sendSignal(channel: ClientChannel, name: string): void {
  const c = channel as unknown as {
    outgoing?: { state?: string; id?: number };
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
  };
  try {
    if (c.outgoing?.state === 'open') channel.signal(name);
    else if (c.outgoing?.state === 'eof' && typeof c.outgoing.id === 'number') c._client?._protocol?.signal?.(c.outgoing.id, name);
  } catch {
    // the connection is gone: nothing to signal
  }
}

function describe(o: { host: string; port: number; user: string; clientName?: string }): string {
  const where = `${o.user}@${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
  return o.clientName ? `client "${o.clientName}" (${where})` : where;
}

function summarize(command: string): string {
  const one = command.replace(/\s+/g, ' ');
  return JSON.stringify(one.length > 80 ? `${one.slice(0, 77)}...` : one);
}

/**
 * Connects to a client and logs in with the server's key. Resolves once a session is ready to
 * run commands; the caller pins `hostKeyFingerprint` when `firstContact` is true.
 */
export function connectToClient(options: ConnectOptions): Promise<SshConnection> {
  const port = options.port ?? 22;
  const opts = { ...options, port };
  const where = `${options.host}:${port}`;
  const name = options.clientName ?? options.host;
  const label = describe(opts);
  if (options.pinnedHostKey !== undefined && !isFingerprint(options.pinnedHostKey)) {
    return Promise.reject(
      new HaulError('InvalidArgument', `The pinned host key of ${label} is not an OpenSSH SHA-256 fingerprint ("SHA256:" and 43 base64 characters): ${JSON.stringify(options.pinnedHostKey)}.`),
    );
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return Promise.reject(new HaulError('InvalidArgument', `Port ${port} of ${label} is not a TCP port (1-65535).`));
  }
  const connectMs = options.timeouts?.connectMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  return new Promise<SshConnection>((resolve, reject) => {
    const ssh = new Client();
    let seen: { fingerprint: string; type: string } | undefined;
    let negotiated: NegotiatedAlgorithms | undefined;
    let hostKeyError: HaulError | undefined;
    let settled = false;

    const fail = (err: HaulError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      ssh.removeAllListeners('ready');
      // Keep a listener: ssh2 may still emit errors while it tears the socket down.
      ssh.on('error', () => {});
      ssh.end();
      socketOf(ssh)?.destroy();
      reject(err);
    };

    // ssh2's readyTimeout covers the same span; this guard also covers a stuck DNS lookup.
    const guard = setTimeout(() => fail(unreachable(`no SSH session within ${seconds(connectMs)}`, 'timeout')), connectMs + 1_000);

    const hostVerifier = (key: Buffer): boolean => {
      const fingerprint = sshFingerprint(key);
      const type = sshKeyType(key);
      seen = { fingerprint, type };
      if (options.pinnedHostKey !== undefined) {
        if (fingerprint === options.pinnedHostKey) return true;
        hostKeyError = new HaulError(
          'HostKeyChanged',
          `The SSH host key of ${label} has changed: Haul pinned ${options.pinnedHostKey}, the client now shows ${keyName(type)} key ${fingerprint}. ` +
            `Haul does not connect to it until the key is checked. This happens when the client was reinstalled or its host keys regenerated, ` +
            `but it can also mean someone is intercepting the connection. Verify the new fingerprint on the client itself ` +
            `(ssh-keygen -lf /etc/ssh/ssh_host_${keyFileName(type)}_key.pub), then re-pin it: haul client pin ${name}`,
        );
        return false;
      }
      if (options.trustOnFirstUse === false) {
        hostKeyError = new HaulError(
          'HostKeyUnknown',
          `${label} shows ${keyName(type)} host key ${fingerprint}, and no host key is pinned for it. Verify the fingerprint on the client ` +
            `(ssh-keygen -lf /etc/ssh/ssh_host_${keyFileName(type)}_key.pub), then pin it: haul client pin ${name}`,
        );
        return false;
      }
      return true;
    };

    const unreachable = (what: string, kind: 'refused' | 'dns' | 'timeout' | 'network' | 'closed' | 'handshake', cause?: unknown): HaulError => {
      const check: Record<typeof kind, string> = {
        refused: `nothing accepts connections there. Check that sshd runs on the client and listens on port ${port}, and that the port is right.`,
        dns: `the name ${options.host} does not resolve. Check the client's host name and the daemon machine's DNS.`,
        timeout: `Check that the client is up, that ${where} is its address and SSH port, and that no firewall drops the connection.`,
        network: `Check the network route from the daemon to the client, its address and firewalls.`,
        closed: `Check the client's sshd log (for example MaxStartups, AllowUsers, or tcp wrappers refusing the daemon's address).`,
        handshake: `The client's sshd and Haul share no safe algorithm, or the connection broke. Check the client's sshd log; Haul needs an Ed25519, ECDSA or RSA-SHA2 host key.`,
      };
      return new HaulError('Unreachable', `Cannot reach ${label}: ${what}; ${check[kind]}`, { cause });
    };

    ssh.once('handshake', (n: NegotiatedAlgorithms) => {
      negotiated = n;
    });

    ssh.on('ready', () => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      if (!seen) {
        // Cannot happen with ssh2 (the verifier runs during key exchange), but never trust by default.
        ssh.end();
        reject(new HaulError('HostKeyUnknown', `${label}: no host key was seen during the key exchange.`));
        return;
      }
      resolve(new SshConnection(ssh, opts, seen, negotiated));
    });

    ssh.on('error', (err: Error & { level?: string; code?: string }) => {
      if (hostKeyError) return fail(hostKeyError);
      const code = err.code ?? '';
      const level = err.level ?? '';
      if (level === 'client-authentication') {
        return fail(
          new HaulError(
            'AuthRefused',
            `${label} refused the daemon's SSH key for user ${options.user}. On the client, paste the line that "haul client add" prints ` +
              `into ~${options.user}/.ssh/authorized_keys (one line, unchanged), and check that the user exists and its account is not locked.`,
            { cause: err },
          ),
        );
      }
      if (code === 'ECONNREFUSED') return fail(unreachable('connection refused', 'refused', err));
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || level === 'client-dns') {
        return fail(unreachable(`cannot resolve ${options.host} (${code || err.message})`, 'dns', err));
      }
      if (code === 'ETIMEDOUT' || level === 'client-timeout') {
        return fail(unreachable(`no SSH session within ${seconds(connectMs)}`, 'timeout', err));
      }
      if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') {
        return fail(unreachable(`${code === 'ENETUNREACH' ? 'network' : 'host'} unreachable`, 'network', err));
      }
      if (code === 'ECONNRESET' || code === 'EPIPE') return fail(unreachable(`the connection was reset (${code})`, 'closed', err));
      if (level === 'client-socket') return fail(unreachable(err.message, 'network', err));
      return fail(unreachable(`the SSH handshake failed (${err.message})`, 'handshake', err));
    });

    ssh.on('close', () => {
      if (hostKeyError) return fail(hostKeyError);
      fail(unreachable('the client closed the connection before login', 'closed'));
    });

    const config: ConnectConfig = {
      host: options.host,
      port,
      username: options.user,
      privateKey: options.identity.privateKey,
      authHandler: ['publickey'],
      hostVerifier,
      algorithms: ALGORITHMS,
      readyTimeout: connectMs,
      keepaliveInterval: options.timeouts?.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: options.timeouts?.keepaliveCountMax ?? DEFAULT_KEEPALIVE_COUNT_MAX,
      tryKeyboard: false,
    };
    try {
      ssh.connect(config);
      // Commands are small request/answer exchanges: without this, Nagle and delayed ACKs add 40 ms to each.
      ssh.setNoDelay(true);
    } catch (err) {
      fail(new HaulError('InvalidArgument', `Cannot connect to ${label}: ${(err as Error).message}`, { cause: err }));
    }
  });
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

function keyName(type: string): string {
  if (type === 'ssh-ed25519') return 'an ED25519';
  if (type.startsWith('ecdsa-')) return 'an ECDSA';
  if (type.startsWith('rsa-') || type === 'ssh-rsa') return 'an RSA';
  return `a ${type}`;
}

function keyFileName(type: string): string {
  if (type === 'ssh-ed25519') return 'ed25519';
  if (type.startsWith('ecdsa-')) return 'ecdsa';
  if (type.startsWith('rsa-') || type === 'ssh-rsa') return 'rsa';
  return '*';
}

/**
 * Wraps a POSIX sh script so it runs the same whatever the user's login shell (sh, bash, zsh,
 * fish, csh): `exec /bin/sh -c '<script>'`. The script must not contain a single quote, a
 * backslash, `!` or a newline, which some of those shells treat specially inside quotes.
 */
export function posixShell(script: string): string {
  if (/['\\!\n\r\0]/.test(script)) {
    throw new HaulError('InvalidArgument', `A remote script may not contain quotes, backslashes, "!" or newlines: ${summarize(script)}`);
  }
  return `exec /bin/sh -c '${script}'`;
}
