// Memory for the probe's large frames (a chunk joined from several SSH reads), reused from chunk
// to chunk. A fresh buffer per frame cost malloc, page faults, and, since a frame lives while its
// chunk is checked on a worker, old-generation garbage: every 64 MiB of that makes V8 collect the
// whole heap. A frame's buffer comes back here once its chunk is stored (encrypted into a pack).

/** Capacities: powers of two and the midpoints between them, so at most a third is unused. */
function capacityFor(n: number): number {
  let c = 64 * 1024;
  while (c < n) c = c % 3 === 0 ? (c / 3) * 4 : c * 1.5;
  return c;
}

export class FrameBuffers {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private freeBytes = 0;

  /** `maxFreeBytes`: what is kept for reuse at most; a buffer given back beyond it is dropped. */
  constructor(private readonly maxFreeBytes = 48 * 1024 * 1024) {}

  /** A buffer of exactly `n` bytes whose memory no one else uses. */
  take(n: number): Buffer {
    const capacity = capacityFor(n);
    const reused = this.free.get(capacity)?.pop();
    if (reused) this.freeBytes -= capacity;
    return Buffer.from(reused ?? new ArrayBuffer(capacity), 0, n);
  }

  /**
   * Gives back a frame's memory (any view into it, also one that came back from a worker thread):
   * only memory `take` handed out, and only once nothing reads or keeps it any more.
   */
  give(view: Uint8Array): void {
    const memory = view.buffer;
    if (!(memory instanceof ArrayBuffer) || memory.byteLength !== capacityFor(memory.byteLength)) return;
    if (this.freeBytes + memory.byteLength > this.maxFreeBytes) return;
    let list = this.free.get(memory.byteLength);
    if (!list) this.free.set(memory.byteLength, (list = []));
    list.push(memory);
    this.freeBytes += memory.byteLength;
  }
}
