// Writing packs with O_DIRECT: the bytes go from our memory to the disk without a copy into
// the page cache. A first backup writes its whole size in packs; through the page cache that
// copy (and the allocation of its pages) cost the kernel about 2 CPU seconds per GB on the
// benchmark machine, and nothing reads a pack back soon after it is written.
//
// Direct I/O wants the memory address, the file offset and the length aligned (to the device's
// block size, 512 or 4096). JavaScript cannot see a buffer's address, so the alignment of each
// buffer is found once by trying: a direct write from a misaligned address fails with EINVAL.
import { constants as fsConstants, closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import * as fs from 'node:fs/promises';

/** File offsets and lengths are padded to this; also the most a buffer's start is moved. */
export const directIoBlock = 4096;

/** O_DIRECT, or undefined where Node does not offer it (not Linux). */
export const oDirect: number | undefined = (fsConstants as Record<string, number | undefined>).O_DIRECT;

/** Shared memory that direct writes accept, and the offset in it where aligned views start. */
export type AlignedStarts = WeakMap<ArrayBufferLike, number>;

/**
 * Memory for `length` bytes that direct writes accept: a view into shared memory whose start is
 * aligned (found with a trial write to a scratch file at `scratchPath`, then removed), with room
 * after its end to pad a write to a whole block. Undefined when this file system refuses direct
 * I/O (tmpfs on older kernels, some network file systems): the caller writes through the cache.
 */
export function alignedSharedBuffer(length: number, scratchPath: string, aligned: AlignedStarts): Buffer | undefined {
  if (oDirect === undefined) return undefined;
  const memory = new SharedArrayBuffer(length + 2 * directIoBlock);
  let fd: number;
  try {
    fd = openSync(scratchPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | oDirect, 0o600);
  } catch {
    // Some file systems create the file before they refuse the flag.
    removeScratch(scratchPath);
    return undefined;
  }
  try {
    const view = new Uint8Array(memory);
    for (let start = 0; start < directIoBlock; start += 8) {
      try {
        if (writeSync(fd, view, start, directIoBlock, 0) === directIoBlock) {
          aligned.set(memory, start);
          return Buffer.from(memory, start, length);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return undefined;
      }
    }
    return undefined;
  } finally {
    closeSync(fd);
    removeScratch(scratchPath);
  }
}

function removeScratch(scratchPath: string): void {
  try {
    unlinkSync(scratchPath);
  } catch {
    // Never created, or already gone.
  }
}

/**
 * Writes `data` to the new file `file` with direct I/O and sets its length; false (and no file
 * left) when `data` does not start at an aligned place of a buffer from `alignedSharedBuffer`
 * (with a block of room after it), or the file system refuses, for the caller to write through
 * the cache instead. A buffer refused once is not tried again. Other errors are thrown.
 */
export async function writeDirect(file: string, data: Buffer, aligned: AlignedStarts): Promise<boolean> {
  const start = aligned.get(data.buffer);
  if (oDirect === undefined || start === undefined || (data.byteOffset - start) % directIoBlock !== 0) return false;
  const padded = Math.ceil(data.length / directIoBlock) * directIoBlock;
  if (data.byteOffset + padded > data.buffer.byteLength) return false;
  const view = new Uint8Array(data.buffer, data.byteOffset, padded);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | oDirect, 0o600);
    let done = 0;
    while (done < padded) {
      const { bytesWritten } = await fh.write(view, done, padded - done, done);
      if (bytesWritten === 0) throw new Error('the disk accepted no bytes');
      done += bytesWritten;
    }
    // The padding (stale bytes of the buffer) is cut off before anyone can see the file.
    await fh.truncate(data.length);
    await fh.sync();
    await fh.close();
    fh = undefined;
    return true;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fs.rm(file, { force: true }).catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') {
      aligned.delete(data.buffer);
      return false;
    }
    throw err;
  }
}
