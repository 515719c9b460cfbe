// The bus's Unix sockets live in $HAUL_HOME/run/. File permissions are their only access control:
// whoever can connect can run jobs, restore and download whole snapshots. So the directory is
// 0700 and the sockets 0600 (the daemon's user only) by default; with group access, 0750 and
// 0660, for a web server running as another user in the daemon's group. The sockets are made
// by bind() under the process umask and tightened right after; the directory's mode covers
// that moment.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { HaulError } from '../../shared/errors.js';
import { runDirectory } from '../../shared/bus/endpoints.js';

export function ipcModes(groupAccess: boolean): { directory: number; socket: number } {
  return groupAccess ? { directory: 0o750, socket: 0o660 } : { directory: 0o700, socket: 0o600 };
}

/** Creates (or tightens) $HAUL_HOME/run; refuses a symlink or a directory someone else owns. */
export function prepareRunDirectory(stateDir: string, groupAccess: boolean): string {
  const dir = runDirectory(stateDir);
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
  try {
    fs.mkdirSync(dir, { mode: ipcModes(groupAccess).directory });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) {
    throw new HaulError('InvalidArgument', `${dir} is not a directory (a symlink or a file); the daemon keeps its bus sockets there. Remove it and start again.`);
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new HaulError('InvalidArgument', `${dir} belongs to user ${st.uid}, not to the daemon's user ${process.getuid()}; another user could replace the bus sockets. Remove it or run the daemon as its owner.`);
  }
  fs.chmodSync(dir, ipcModes(groupAccess).directory);
  return dir;
}

/**
 * Makes the socket path free for bind(). libzmq would silently unlink an existing socket, which
 * would cut off a daemon that is still running; so a socket that accepts connections is
 * refused, and only a stale one (left by a killed daemon) is removed.
 */
export async function claimSocketPath(socketPath: string, stateDir: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new HaulError('InvalidArgument', `${socketPath} exists and is not a socket; the daemon needs that name for its bus. Move the file away and start again.`);
  }
  const alive = await new Promise<boolean>((resolve) => {
    const conn = net.connect({ path: socketPath });
    conn.once('connect', () => {
      conn.destroy();
      resolve(true);
    });
    conn.once('error', () => resolve(false));
  });
  if (alive) {
    throw new HaulError('DaemonAlreadyRunning', `another Haul daemon is running with the state directory ${stateDir} (it answers at ipc://${socketPath}). Stop it first, or give this one another --home.`);
  }
  fs.unlinkSync(socketPath);
}

export function restrictSocket(socketPath: string, groupAccess: boolean): void {
  fs.chmodSync(socketPath, ipcModes(groupAccess).socket);
}

export function removeSocket(socketPath: string): void {
  try {
    fs.unlinkSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
