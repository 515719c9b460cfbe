// Frames on the bus: JSON in, JSON out, and one send at a time per socket.
import type { Writable } from 'zeromq';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export type DecodedFrame = { ok: true; value: unknown } | { ok: false; problem: string };

/** Parses one frame as UTF-8 JSON, saying what is wrong with it otherwise. */
export function decodeJsonFrame(frame: Uint8Array, maxBytes: number): DecodedFrame {
  if (frame.byteLength > maxBytes) return { ok: false, problem: `${frame.byteLength} bytes, over the ${maxBytes}-byte limit` };
  let text: string;
  try {
    text = strictUtf8.decode(frame);
  } catch {
    return { ok: false, problem: 'not UTF-8' };
  }
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
}

export function encodeJsonFrame(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/**
 * zeromq.js allows one send in flight per socket (a second one fails with EBUSY while the
 * first waits for room), so every send of a socket goes through one queue. A failed send
 * rejects only its own caller.
 */
export class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly socket: Writable) {}

  send(frames: (Buffer | string)[]): Promise<void> {
    const sent = this.tail.then(() => this.socket.send(frames));
    this.tail = sent.catch(() => undefined);
    return sent;
  }
}
