// Whether a process of this machine still exists: a lock or a lease held by a dead process on
// the same host can be ignored at once instead of waiting for it to time out.
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
