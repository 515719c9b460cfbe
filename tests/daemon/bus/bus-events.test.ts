// Events over a real ZeroMQ bus: topics per job, the live-subscription handshake, progress
// coalesced to at most 4 a second per job, and what the publisher does with bad input from both
// sides (a daemon bug publishing a malformed event, a subscriber sending messages).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { ProgressThrottle, type Timers } from '../../../daemon/bus/event-publisher.js';
import { BusClient, type EventSubscription } from '../../../shared/bus/bus-client.js';
import { BUS_PROTOCOL_VERSION, jobTopic, type BusEvent, type JobProgressEvent } from '../../../shared/bus/messages.js';
import { LEVEL, startTestBus, wireJob, type TestBus } from '../../helpers/bus.js';

const now = () => new Date().toISOString();

function progress(jobId: number, filesDone: number, at = now()): JobProgressEvent {
  return {
    v: BUS_PROTOCOL_VERSION, type: 'job-progress', at, jobId, filesTotal: '1000', filesDone: String(filesDone), bytesScanned: String(filesDone * 4096),
    bytesNew: '0', bytesOnWire: '0', errors: 0, bytesPerSecond: null, etaSeconds: null, currentPath: null,
  };
}

function logLine(jobId: number, text: string): BusEvent {
  return { v: BUS_PROTOCOL_VERSION, type: 'job-log', at: now(), jobId, level: 'INFO', line: `${now()} INFO  ${text}` };
}

/** Collects events from a subscription until `until` says stop (or the time runs out). */
async function collect(sub: EventSubscription, until: (events: BusEvent[]) => boolean, ms = 3000): Promise<BusEvent[]> {
  const events: BusEvent[] = [];
  const timer = setTimeout(() => sub.close(), ms);
  for await (const e of sub) {
    events.push(e);
    if (until(events)) break;
  }
  clearTimeout(timer);
  return events;
}

describe('ProgressThrottle (a scripted clock)', () => {
  function scripted() {
    let t = 0;
    const due: { at: number; fn: () => void; cancelled: boolean }[] = [];
    const timers: Timers = {
      now: () => t,
      schedule(fn, ms) {
        const entry = { at: t + ms, fn, cancelled: false };
        due.push(entry);
        return { cancel: () => void (entry.cancelled = true) };
      },
    };
    const advance = (to: number) => {
      while (true) {
        const next = due.filter((d) => !d.cancelled && d.at <= to).sort((a, b) => a.at - b.at)[0];
        if (!next) break;
        t = next.at;
        next.cancelled = true;
        next.fn();
      }
      t = to;
    };
    return { timers, advance };
  }

  it('sends 100 updates over 1 s as 5: the first at once, then the latest every 250 ms', () => {
    const { timers, advance } = scripted();
    const sent: [number, number][] = [];
    const throttle = new ProgressThrottle(250, (e) => sent.push([timers.now(), Number(e.filesDone)]), timers);
    for (let i = 1; i <= 100; i++) {
      advance(i * 10 - 10);
      throttle.offer(progress(7, i));
    }
    advance(2000);
    expect(sent).toEqual([[0, 1], [250, 25], [500, 50], [750, 75], [1000, 100]]);
  });

  it('keeps jobs apart, and flush/finish send what waits at once', () => {
    const { timers, advance } = scripted();
    const sent: string[] = [];
    const throttle = new ProgressThrottle(250, (e) => sent.push(`${timers.now()}:${e.jobId}:${e.filesDone}`), timers);
    throttle.offer(progress(1, 1));
    throttle.offer(progress(2, 1));
    advance(100);
    throttle.offer(progress(1, 2));
    throttle.offer(progress(2, 2));
    throttle.finish(1);
    advance(1000);
    // Job 1 ended at 100 ms with its last numbers; job 2's waited for its slot.
    expect(sent).toEqual(['0:1:1', '0:2:1', '100:1:2', '250:2:2']);
    // A finished job starts afresh.
    throttle.offer(progress(1, 3));
    expect(sent.at(-1)).toBe('1000:1:3');
    // Quiet for longer than the interval: the next update goes at once.
    advance(5000);
    throttle.offer(progress(2, 3));
    expect(sent.at(-1)).toBe('5000:2:3');
  });
});

describe('bus events', () => {
  let bus: TestBus;
  let client: BusClient;
  beforeAll(async () => {
    bus = await startTestBus({ progressIntervalMs: 250 });
    client = await BusClient.connect({ endpoint: bus.server.endpoints!.ipc.commands });
  });
  afterAll(async () => {
    client?.close();
    await bus?.stop();
  });

  it('a subscription is live when subscribe() resolves: an event published right after arrives (5 times over)', async () => {
    for (let round = 0; round < 5; round++) {
      const sub = await client.subscribe({ topics: [jobTopic(500 + round)] });
      bus.server.publish(logLine(500 + round, `round ${round}`));
      const events = await collect(sub, (e) => e.length === 1);
      expect(events.map((e) => e.type === 'job-log' && e.line.endsWith(`round ${round}`))).toEqual([true]);
    }
  });

  it("job/12/ gets job 12's events in order, and none of job 1's or job 120's", async () => {
    const sub = await client.subscribe({ topics: [jobTopic(12)] });
    bus.board.add(wireJob(12));
    bus.board.add(wireJob(1));
    bus.board.add(wireJob(120));
    bus.board.transition(1, 'connecting');
    bus.board.transition(12, 'connecting');
    bus.board.transition(120, 'connecting');
    bus.server.publish(logLine(120, 'not for you'));
    bus.server.publish(logLine(12, 'connected to web1'));
    bus.board.transition(12, 'succeeded', { snapshotId: 'abcdef12' });
    const events = await collect(sub, (e) => e.some((x) => x.type === 'job-state' && x.job.state === 'succeeded'));
    expect(events.map((e) => (e.type === 'job-state' ? `${e.job.id} ${e.previousState}->${e.job.state}` : e.type === 'job-log' ? `${e.jobId} ${e.line.slice(31)}` : e.type))).toEqual([
      '12 queued->connecting',
      '12 connected to web1',
      '12 connecting->succeeded',
    ]);
    expect(sub.droppedEvents).toBe(0);
  });

  it('progress reaches a subscriber at most 4 times a second per job, the latest numbers last, before the state change', async () => {
    const sub = await client.subscribe({ topics: ['job/'] });
    bus.board.add(wireJob(30, { state: 'transferring' }));
    bus.board.add(wireJob(31, { state: 'transferring' }));
    const started = Date.now();
    for (let i = 1; i <= 200; i++) {
      bus.server.publish(progress(30, i));
      bus.server.publish(progress(31, i * 2));
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = Date.now() - started;
    bus.board.transition(30, 'succeeded');
    bus.board.transition(31, 'succeeded');
    const events = await collect(sub, (e) => e.filter((x) => x.type === 'job-state').length === 2);
    for (const [jobId, last] of [[30, 200], [31, 400]] as const) {
      const mine = events.filter((e) => (e.type === 'job-progress' && e.jobId === jobId) || (e.type === 'job-state' && e.job.id === jobId));
      const updates = mine.filter((e) => e.type === 'job-progress').map((e) => Number((e as JobProgressEvent).filesDone));
      // The first at once, then one per 250 ms at most (plus the flush before the state).
      expect(updates.length).toBeGreaterThanOrEqual(3);
      expect(updates.length).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 250));
      expect(updates).toEqual([...updates].sort((a, b) => a - b));
      expect(updates.at(-1)).toBe(last);
      expect(mine.at(-1)!.type).toBe('job-state');
    }
  });

  it('a malformed event from daemon code is logged as a bug and not sent; publishing goes on', async () => {
    const sub = await client.subscribe({ topics: [jobTopic(40)] });
    const bad = { ...progress(40, 1), bytesScanned: 123 } as unknown as BusEvent;
    bus.server.publish(bad);
    bus.server.publish(logLine(40, 'still here'));
    const events = await collect(sub, (e) => e.length === 1);
    expect(events.map((e) => e.type)).toEqual(['job-log']);
    expect(bus.log.at(LEVEL.error)).toContain('did not publish a malformed job-progress event: bytesScanned: Invalid input: expected string, received number');
  });

  it('messages a subscriber sends (other than subscriptions) are logged and dropped', async () => {
    const rogue = new zmq.XSubscriber({ linger: 0 });
    rogue.connect(bus.server.endpoints!.ipc.events);
    await rogue.send([Buffer.from('\u0002not a subscription')]);
    await rogue.send(['hello', 'world']);
    const deadline = Date.now() + 3000;
    while (bus.log.at(LEVEL.warn).filter((m) => m.startsWith('dropped a message sent to the events socket (ipc)')).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    rogue.close();
    expect(bus.log.at(LEVEL.warn).filter((m) => m === 'dropped a message sent to the events socket (ipc): subscribers may only subscribe')).toHaveLength(2);
    const sub = await client.subscribe({ topics: [jobTopic(41)] });
    bus.server.publish(logLine(41, 'events still flow'));
    expect((await collect(sub, (e) => e.length === 1)).length).toBe(1);
  });

  it('the daemon-status heartbeat arrives at its interval', async () => {
    const beating = await startTestBus({ heartbeatMs: 100 });
    const c = await BusClient.connect({ endpoint: beating.server.endpoints!.ipc.commands });
    try {
      const sub = await c.subscribe({ topics: ['daemon/'] });
      const started = Date.now();
      const events = await collect(sub, (e) => e.length === 4);
      expect(events.map((e) => e.type)).toEqual(['daemon-status', 'daemon-status', 'daemon-status', 'daemon-status']);
      expect(Date.now() - started).toBeLessThan(1500);
      const first = events[0]!;
      expect(first.type === 'daemon-status' && first.status.pid).toBe(process.pid);
    } finally {
      c.close();
      await beating.stop();
    }
  });

  it('a subscriber and a client go on working when the daemon restarts at the same endpoint', async () => {
    const first = await startTestBus();
    const c = await BusClient.connect({ endpoint: first.server.endpoints!.ipc.commands });
    try {
      const sub = await c.subscribe({ topics: [jobTopic(60)] });
      await first.server.stop();
      const second = await startTestBus({}, first.stateDir);
      // ZeroMQ reconnects by itself; the subscription is sent again on the new connection.
      const publishing = setInterval(() => second.server.publish(logLine(60, 'after the restart')), 50);
      const events = await collect(sub, (e) => e.length === 1, 5000);
      clearInterval(publishing);
      expect(events.map((e) => e.type === 'job-log' && e.line.endsWith('after the restart'))).toEqual([true]);
      expect((await c.request('status', {})).pid).toBe(process.pid);
      await second.stop();
    } finally {
      c.close();
      await first.stop(); // removes the state directory it made
    }
  });
});
