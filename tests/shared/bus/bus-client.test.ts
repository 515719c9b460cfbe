// The client validates everything the daemon sends. Here the "daemon" is a hand-driven pair of
// real ZeroMQ sockets (ROUTER and XPUB on ipc://) that sends whatever the test tells it to: a
// broken or mismatched daemon must produce a clear error or a dropped message, never a wrong
// value in the caller's hands.
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { BusClient } from '../../../shared/bus/bus-client.js';
import { BUS_PROTOCOL_VERSION, type DaemonStatus } from '../../../shared/bus/messages.js';
import { tempDir } from '../../helpers/cli.js';
import { failure } from '../../helpers/errors.js';

type Answer = (request: { id: string; command: string; credit?: number }) => (Buffer | string)[][];

/** A daemon that answers each request with the frames `answer` gives. */
class ScriptedDaemon {
  readonly router = new zmq.Router({ linger: 0 });
  readonly xpub = new zmq.XPublisher({ linger: 0 });
  answer: Answer = () => [];
  /** What goes out on a new subscription (the live-subscription handshake). */
  onSubscribe: () => (Buffer | string)[][] = () => [];
  readonly received: unknown[] = [];

  constructor(readonly dir: string) {}

  get commands() {
    return `ipc://${path.join(this.dir, 'c.sock')}`;
  }
  get events() {
    return `ipc://${path.join(this.dir, 'e.sock')}`;
  }

  async start(): Promise<void> {
    await this.router.bind(this.commands);
    this.xpub.verbosity = 'allSubs';
    await this.xpub.bind(this.events);
    void (async () => {
      for await (const [route, frame] of this.router) {
        const message = JSON.parse(frame!.toString()) as { id: string; command: string; credit?: number; type: string };
        this.received.push(message);
        if (message.type !== 'request') continue;
        for (const frames of this.answer(message)) await this.router.send([route!, ...frames]);
      }
    })();
    void (async () => {
      for await (const [frame] of this.xpub) if (frame![0] === 1) for (const frames of this.onSubscribe()) await this.xpub.send(frames);
    })();
  }

  stop(): void {
    this.router.close();
    this.xpub.close();
  }
}

const json = (v: unknown) => JSON.stringify(v);
const status = (events: string): DaemonStatus => ({
  version: '9.9.9', protocol: 1, pid: 1, daemonId: null, startedAt: '2026-11-23T10:00:00.000Z', uptimeSeconds: 1,
  events: { ipc: events, tcp: null }, running: [], queued: [], queuedTotal: 0,
});

describe('BusClient against a daemon that breaks the protocol', () => {
  const tmp = tempDir('bus-rogue');
  const daemon = new ScriptedDaemon(tmp.dir);
  let client: BusClient;
  beforeAll(async () => {
    await daemon.start();
    client = await BusClient.connect({ endpoint: daemon.commands, timeoutMs: 1000 });
  });
  afterAll(() => {
    client?.close();
    daemon.stop();
    tmp.cleanup();
  });

  it('a result that breaks the schema is a BusProtocol error naming the field', async () => {
    daemon.answer = ({ id }) => [[json({ v: 1, id, type: 'reply', result: { ...status(daemon.events), pid: 'one' } })]];
    const err = await failure(client.request('status', {}));
    expect(err.code).toBe('BusProtocol');
    expect(err.message).toBe('the daemon\'s answer to "status" does not match bus protocol 1 (result.pid: Invalid input: expected number, received string); are the daemon and this client the same Haul version?');
  });

  it('another protocol version in the reply is refused', async () => {
    daemon.answer = ({ id }) => [[json({ v: 2, id, type: 'reply', result: status(daemon.events) })]];
    const err = await failure(client.request('status', {}));
    expect(err.code).toBe('BusProtocol');
    expect(err.message).toBe('the daemon\'s answer to "status" does not match bus protocol 1 (v: Invalid input: expected 1); are the daemon and this client the same Haul version?');
  });

  it('garbage and answers to nobody are dropped; the real answer still arrives', async () => {
    const before = client.droppedMessages;
    daemon.answer = ({ id }) => [
      [Buffer.from([0xff, 0x00])],
      ['not json'],
      [json({ v: 1, id: 'someone-else', type: 'reply', result: {} })],
      [json({ v: 1, id, type: 'reply', result: {} }), 'a', 'b'],
      [json({ v: 1, id, type: 'error', error: { code: 'SnapshotNotFound', message: 'no snapshot has an ID starting with ffff' } })],
    ];
    const err = await failure(client.request('status', {}));
    // The three-frame message named this request: it failed it first.
    expect(err.code).toBe('BusProtocol');
    // The fifth message (an error for the request already failed) may still be on its way: it
    // arrives after the failure, so wait for it (a loaded machine delivered it late in CI).
    for (let i = 0; i < 100 && client.droppedMessages - before < 5; i++) await new Promise((r) => setTimeout(r, 20));
    expect(client.droppedMessages - before).toBe(5);

    daemon.answer = ({ id }) => [[Buffer.from([0xff])], [json({ v: 1, id, type: 'error', error: { code: 'SnapshotNotFound', message: 'no snapshot has an ID starting with ffff' } })]];
    const typed = await failure(client.request('status', {}));
    expect(typed.code).toBe('SnapshotNotFound');
    expect(typed.message).toBe('no snapshot has an ID starting with ffff');
  });

  it('a stream that sends beyond the credit, out of order, or with wrong totals fails with BusProtocol', async () => {
    const start = (id: string) => [json({ v: 1, id, type: 'stream-start', meta: { name: 'x.tar', contentType: 'application/x-tar' } })];
    const chunk = (id: string, seq: number) => [json({ v: 1, id, type: 'stream-chunk', seq }), Buffer.alloc(10, seq)];
    const read = async (credit: number) => {
      const stream = await client.stream('download-snapshot', { snapshot: 'abcd' }, { credit, idleTimeoutMs: 1000 });
      // Everything the daemon sent is in before the first chunk is read (and credit returned).
      await new Promise((r) => setTimeout(r, 100));
      let bytes = 0;
      const err = await failure((async () => {
        for await (const c of stream) bytes += c.byteLength;
      })());
      return { err, bytes };
    };

    daemon.answer = ({ id }) => [start(id), chunk(id, 0), chunk(id, 1), chunk(id, 2)];
    const beyond = await read(2);
    expect(beyond.err.message).toBe('the daemon\'s stream "download-snapshot" broke the bus protocol (chunk 2 beyond the 2 this reader allowed).');
    // The client tells the daemon to stop.
    expect(daemon.received.at(-1)).toMatchObject({ type: 'cancel-stream' });

    daemon.answer = ({ id }) => [start(id), chunk(id, 0), chunk(id, 2)];
    expect((await read(8)).err.message).toBe('the daemon\'s stream "download-snapshot" broke the bus protocol (chunk 2 where 1 was due).');

    daemon.answer = ({ id }) => [start(id), chunk(id, 0), [json({ v: 1, id, type: 'stream-end', chunks: 1, bytes: 11 })]];
    const totals = await read(8);
    expect(totals.bytes).toBe(10);
    expect(totals.err.message).toBe('the daemon\'s stream "download-snapshot" ended after 1 chunks (11 bytes), but 1 chunks (10 bytes) arrived.');

    daemon.answer = ({ id }) => [[json({ v: 1, id, type: 'stream-start', meta: { name: 'x.tar', contentType: 'text/html' } })]];
    const meta = await failure(client.stream('download-snapshot', { snapshot: 'abcd' }));
    expect(meta.message).toBe('the daemon\'s stream "download-snapshot" starts with metadata this client cannot read (meta.contentType: Invalid input: expected "application/x-tar").');
  });

  it('events: malformed ones, and ones whose topic does not match their content, are dropped and counted', async () => {
    const statusEvent = json({ v: BUS_PROTOCOL_VERSION, type: 'daemon-status', at: '2026-11-23T10:00:00.000Z', status: status(daemon.events) });
    daemon.answer = ({ id }) => [[json({ v: 1, id, type: 'reply', result: status(daemon.events) })]];
    daemon.onSubscribe = () => [['daemon/status', statusEvent]];
    const sub = await client.subscribe({ topics: ['job/7/'] });
    const line = (jobId: number, text: string) => json({ v: 1, type: 'job-log', at: '2026-11-23T10:00:00.000Z', jobId, level: 'INFO', line: text });
    await daemon.xpub.send(['job/7/log', 'not json']);
    await daemon.xpub.send(['job/7/log', line(8, 'job 8 dressed up as job 7')]);
    await daemon.xpub.send(['job/7/log', line(7, 'three frames'), 'extra']);
    await daemon.xpub.send(['job/7/log', json({ v: 1, type: 'job-log', at: 'yesterday', jobId: 7, level: 'INFO', line: 'bad time' })]);
    await daemon.xpub.send(['job/7/log', line(7, 'the real one')]);
    for await (const event of sub) {
      expect(event).toMatchObject({ type: 'job-log', jobId: 7, line: 'the real one' });
      break;
    }
    expect(sub.droppedEvents).toBe(4);
  });

  it('a daemon that answers commands but publishes no status: subscribe fails after its timeout', async () => {
    daemon.onSubscribe = () => [];
    const started = Date.now();
    const err = await failure(client.subscribe({ topics: ['job/'], readyTimeoutMs: 300 }));
    expect(Date.now() - started).toBeLessThan(1500);
    expect(err.code).toBe('DaemonNotRunning');
    expect(err.message).toBe(`the Haul daemon answers commands but no events arrived from ${daemon.events} within 0.3 s; check that its events endpoint is reachable (docs/bus.md).`);
  });
});
