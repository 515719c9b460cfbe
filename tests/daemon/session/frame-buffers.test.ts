import { describe, expect, it } from 'vitest';
import { FrameBuffers } from '../../../daemon/session/frame-buffers.js';
import { FrameDecoder, encodeFrame } from '../../../shared/probe-protocol.js';

describe('frame buffers', () => {
  it('hands out exactly n bytes of memory of its own, and reuses what is given back', () => {
    const pool = new FrameBuffers();
    const a = pool.take(300_000);
    expect(a.length).toBe(300_000);
    expect(a.buffer.byteLength).toBe(384 * 1024);
    pool.give(a.subarray(5));
    const b = pool.take(270_000);
    expect(b.buffer).toBe(a.buffer);
    expect(b.length).toBe(270_000);
    // Another capacity class gets fresh memory.
    expect(pool.take(300_000).buffer).not.toBe(a.buffer);
    expect(pool.take(600_000).buffer.byteLength).toBe(768 * 1024);
  });

  it('keeps at most its limit, and ignores memory it did not hand out', () => {
    const pool = new FrameBuffers(1024 * 1024);
    const taken = [pool.take(500_000), pool.take(500_000), pool.take(500_000)];
    for (const t of taken) pool.give(t);
    // 512 KiB each: two fit under the 1 MiB limit, the third was dropped.
    const again = [pool.take(500_000), pool.take(500_000), pool.take(500_000)];
    expect(again.filter((t) => taken.some((u) => u.buffer === t.buffer))).toHaveLength(2);
    const foreign = Buffer.alloc(100_000);
    pool.give(foreign);
    expect(pool.take(100_000).buffer).not.toBe(foreign.buffer);
  });

  it('gives the decoder memory for frames joined from several reads, never for a view', () => {
    const pool = new FrameBuffers();
    const decoder = new FrameDecoder(undefined, (n) => pool.take(n));
    const big = encodeFrame(0x10, Buffer.alloc(200_000, 1));
    const frames = [...decoder.push(big.subarray(0, 70_000)), ...decoder.push(big.subarray(70_000))];
    expect(frames).toHaveLength(1);
    expect(frames[0]!.exclusive).toBe(true);
    expect(frames[0]!.body.buffer.byteLength).toBe(256 * 1024);
    expect(frames[0]!.body.equals(Buffer.alloc(200_000, 1))).toBe(true);
    const small = encodeFrame(0x11, Buffer.from('one read'));
    const [view] = decoder.push(small);
    expect(view!.exclusive).toBe(false);
    expect(view!.body.toString()).toBe('one read');
  });
});
