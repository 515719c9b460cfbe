// When jobs are due: one node-schedule timer per enabled client with a schedule, in the daemon's
// time zone, and after a start the catch-up of slots missed while the daemon was down (one run
// per client, however many slots it missed). `reload()` follows the Client table: new, changed,
// disabled and removed schedules. What happens to a due job (queueing, coalescing) is the
// caller's business.
import schedule from 'node-schedule';
import type { Client } from '../../prisma/generated/sqlite/client.js';
import { isHaulError, type HaulError } from '../../shared/errors.js';
import type { PrismaClient } from '../database/open-database.js';
import { CronSchedule } from './cron-schedule.js';

export type DueTrigger = 'schedule' | 'catch-up';

export interface SchedulerOptions {
  prisma: PrismaClient;
  timeZone: string;
  /** A client's slot has come (or, for catch-up, was missed). */
  onDue: (client: Client, trigger: DueTrigger, slot: Date) => void;
  /** When each client's newest backup was queued (by client ID), to tell whether a slot was missed. */
  lastQueuedAt: () => Promise<Map<number, Date>>;
  /** A schedule in the database that cannot be used; that client is skipped, the others go on. */
  onInvalid?: (client: Client, err: HaulError) => void;
}

interface Entry {
  client: Client;
  cron: CronSchedule;
  timer: schedule.Job;
}

export interface ReloadResult {
  scheduled: string[];
  unscheduled: string[];
  unchanged: string[];
}

// Slot arithmetic (cron-parser over luxon) costs milliseconds per client: a thousand clients
// would hold the event loop for seconds, delaying the daemon's heartbeat (daemon/fleet/), its
// running jobs and its bus. Long loops give way after this much work.
const sliceMs = 20;

/** Yields to the event loop once `sliceMs` of work has gone by since the last yield. */
function timeSlicer(): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < sliceMs) return;
    await new Promise((resolve) => setImmediate(resolve));
    since = performance.now();
  };
}

export class Scheduler {
  private readonly entries = new Map<number, Entry>();
  private timeZone: string;
  private stopped = false;

  constructor(private readonly options: SchedulerOptions) {
    this.timeZone = options.timeZone;
  }

  /** Reads the Client table again and brings the timers in line with it. */
  async reload(timeZone = this.timeZone): Promise<ReloadResult> {
    const result: ReloadResult = { scheduled: [], unscheduled: [], unchanged: [] };
    if (this.stopped) return result;
    const zoneChanged = timeZone !== this.timeZone;
    this.timeZone = timeZone;
    const clients = await this.options.prisma.client.findMany({ where: { enabled: true, schedule: { not: null } }, orderBy: { id: 'asc' } });
    const wanted = new Map(clients.map((c) => [c.id, c]));
    for (const [id, entry] of this.entries) {
      const c = wanted.get(id);
      if (!zoneChanged && c && c.schedule === entry.cron.expression) {
        entry.client = c;
        result.unchanged.push(c.name);
        wanted.delete(id);
        continue;
      }
      entry.timer.cancel();
      this.entries.delete(id);
      if (!c) result.unscheduled.push(entry.client.name);
    }
    const giveWay = timeSlicer();
    for (const c of wanted.values()) {
      await giveWay();
      if (this.stopped) break;
      let cron: CronSchedule;
      try {
        cron = CronSchedule.parse(c.schedule!, this.timeZone, `the schedule of client "${c.name}"`);
      } catch (err) {
        if (!isHaulError(err)) throw err;
        this.options.onInvalid?.(c, err);
        continue;
      }
      const entry: Entry = { client: c, cron, timer: undefined as unknown as schedule.Job };
      const timer = schedule.scheduleJob({ rule: cron.expression, tz: this.timeZone }, (fireDate: Date) => this.options.onDue(entry.client, 'schedule', fireDate));
      if (!timer) continue; // no future slot at all (a date in the past): nothing to schedule
      entry.timer = timer;
      this.entries.set(c.id, entry);
      result.scheduled.push(c.name);
    }
    return result;
  }

  /**
   * For each scheduled client whose latest slot before `now` has no job queued at or after it,
   * one catch-up run. Slots from before the client existed do not count.
   */
  async catchUp(now = new Date()): Promise<{ client: string; slot: Date }[]> {
    const due: { client: string; slot: Date }[] = [];
    const entries = [...this.entries.values()];
    const lastQueued = await this.options.lastQueuedAt();
    // A fleet's clients mostly share a few schedules: each expression's slot is found once.
    const previousSlot = new Map<string, Date | undefined>();
    const giveWay = timeSlicer();
    for (const entry of entries) {
      await giveWay();
      if (this.stopped) break;
      let slot = previousSlot.get(entry.cron.expression);
      if (!previousSlot.has(entry.cron.expression)) previousSlot.set(entry.cron.expression, (slot = entry.cron.previous(now)));
      if (!slot || slot < entry.client.createdAt) continue;
      const last = lastQueued.get(entry.client.id);
      if (last && last >= slot) continue;
      due.push({ client: entry.client.name, slot });
      this.options.onDue(entry.client, 'catch-up', slot);
    }
    return due;
  }

  /** The client's next slot, if it has a schedule. */
  nextRun(clientId: number): Date | undefined {
    const next = this.entries.get(clientId)?.timer.nextInvocation();
    return next ? new Date(next.getTime()) : undefined;
  }

  get scheduledClients(): { id: number; name: string }[] {
    return [...this.entries.values()].map((e) => ({ id: e.client.id, name: e.client.name }));
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.entries.values()) entry.timer.cancel();
    this.entries.clear();
  }
}
