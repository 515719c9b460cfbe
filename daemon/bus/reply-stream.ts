// One streamed reply (a snapshot as tar, for download): chunks go out only against credit the
// client granted, and the source is read only when a chunk may go out. So the daemon holds at
// most one source chunk beyond what the network holds, however slow the reader; a reader that
// grants nothing for the idle timeout, cancels or disconnects stops the source.
import { BUS_PROTOCOL_VERSION, BusLimits } from '../../shared/bus/messages.js';
import { encodeJsonFrame } from '../../shared/bus/wire.js';
import { HaulError, isHaulError } from '../../shared/errors.js';
import type { BusLogger } from './bus-logger.js';

export type FrameSender = (frames: (Buffer | string)[]) => Promise<void>;

export class ReplyStream {
  private credit: number;
  private creditWaiter: (() => void) | undefined;
  private stopReason: HaulError | undefined;
  private readonly abort = new AbortController();
  /** Totals so far (for logs and tests). */
  chunksSent = 0;
  bytesSent = 0;

  constructor(
    private readonly send: FrameSender,
    readonly id: string,
    readonly label: string,
    initialCredit: number,
    private readonly idleTimeoutMs: number,
    private readonly logger: BusLogger,
  ) {
    this.credit = initialCredit;
  }

  /** Aborted when the stream stops early; the handler's source may watch it. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  addCredit(n: number): void {
    // More than the protocol's window in flight would be a client asking the daemon to buffer.
    this.credit = Math.min(this.credit + n, BusLimits.maxStreamCredit);
    this.wake();
  }

  /** Stops the stream (client cancel, daemon stop); the source is closed by `run`. */
  stop(reason: HaulError): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.abort.abort(reason);
    this.wake();
  }

  async run(meta: unknown, source: AsyncIterable<Uint8Array>): Promise<void> {
    const iterator = source[Symbol.asyncIterator]();
    let sourceDone = false;
    try {
      await this.send([encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, id: this.id, type: 'stream-start', meta })]);
      while (true) {
        await this.waitForCredit();
        const next = await iterator.next();
        if (next.done) {
          sourceDone = true;
          break;
        }
        const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
        for (let offset = 0; offset < chunk.byteLength; offset += BusLimits.maxStreamChunkBytes) {
          await this.waitForCredit();
          const slice = chunk.subarray(offset, offset + BusLimits.maxStreamChunkBytes);
          await this.send([encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, id: this.id, type: 'stream-chunk', seq: this.chunksSent }), slice]);
          this.credit--;
          this.chunksSent++;
          this.bytesSent += slice.byteLength;
        }
      }
      await this.send([encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, id: this.id, type: 'stream-end', chunks: this.chunksSent, bytes: this.bytesSent })]);
    } catch (err) {
      const reason = this.stopReason ?? err;
      this.logger.info({ stream: this.id, chunks: this.chunksSent, bytes: this.bytesSent }, `stream ${this.label} stopped after ${this.chunksSent} chunks (${this.bytesSent} bytes): ${(reason as Error).message}`);
      // A client that cancelled or vanished gets nothing more; a failing source is reported.
      if (!this.stopReason && !isUnreachable(err)) {
        const wire = isHaulError(err) ? { code: err.code, message: err.message } : { code: 'Internal', message: `the daemon failed while streaming ${this.label}: ${(err as Error).message}. This is a bug in Haul; the daemon log has the details.` };
        if (!isHaulError(err)) this.logger.error({ err, stream: this.id }, `stream ${this.label} failed`);
        await this.send([encodeJsonFrame({ v: BUS_PROTOCOL_VERSION, id: this.id, type: 'error', error: wire })]).catch(() => undefined);
      }
    } finally {
      if (!sourceDone) {
        this.abort.abort(this.stopReason ?? new HaulError('StreamAborted', 'the stream stopped'));
        await iterator.return?.().catch(() => undefined);
      }
    }
  }

  private async waitForCredit(): Promise<void> {
    while (true) {
      if (this.stopReason) throw this.stopReason;
      if (this.credit > 0) return;
      const granted = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.idleTimeoutMs);
        this.creditWaiter = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      if (!granted) {
        this.stop(new HaulError('StreamAborted', `the client granted no credit for ${Math.round(this.idleTimeoutMs / 1000)} s`));
      }
    }
  }

  private wake(): void {
    const waiter = this.creditWaiter;
    this.creditWaiter = undefined;
    waiter?.();
  }
}

/** ROUTER_MANDATORY reports a peer that has gone as EHOSTUNREACH. */
export function isUnreachable(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === 'EHOSTUNREACH';
}
