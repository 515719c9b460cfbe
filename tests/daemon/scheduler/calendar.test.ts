// The daemon's calendar arithmetic, exactly: blackout windows (days, past midnight, touching
// windows, time zones), cron slots before and after a moment (with seconds, across a DST change),
// the retry backoff, and where each configuration value comes from.
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';
import { BlackoutCalendar, parseBlackoutList, parseBlackoutWindow } from '../../../daemon/scheduler/blackout-windows.js';
import { CronSchedule, checkTimeZone } from '../../../daemon/scheduler/cron-schedule.js';
import { retryDelay } from '../../../daemon/scheduler/retry-policy.js';
import { parseDuration, resolveDaemonConfig } from '../../../daemon/service/daemon-config.js';

const at = (iso: string) => new Date(iso);
const calendar = (list: string, zone = 'UTC') => new BlackoutCalendar(parseBlackoutList(list), zone);

describe('blackout windows', () => {
  it('holds jobs inside a daily window and says when it ends', () => {
    const c = calendar('08:00-18:00');
    expect(c.endOf(at('2026-03-02T07:59:59Z'))).toBeUndefined();
    expect(c.endOf(at('2026-03-02T08:00:00Z'))).toEqual(at('2026-03-02T18:00:00Z'));
    expect(c.endOf(at('2026-03-02T17:59:59.900Z'))).toEqual(at('2026-03-02T18:00:00Z'));
    expect(c.endOf(at('2026-03-02T18:00:00Z'))).toBeUndefined();
  });

  it('runs a window past midnight into the next day, only from the days listed', () => {
    // 2026-03-06 is a Friday.
    const c = calendar('fri 22:00-06:00');
    expect(c.endOf(at('2026-03-06T23:30:00Z'))).toEqual(at('2026-03-07T06:00:00Z'));
    expect(c.endOf(at('2026-03-07T05:00:00Z'))).toEqual(at('2026-03-07T06:00:00Z'));
    // Saturday night is not Friday night.
    expect(c.endOf(at('2026-03-07T23:00:00Z'))).toBeUndefined();
    expect(c.endOf(at('2026-03-05T23:00:00Z'))).toBeUndefined();
  });

  it('joins windows that touch, across days, into one blackout', () => {
    const c = calendar('sat,sun 00:00-24:00; fri 20:00-24:00; mon 00:00-07:30');
    expect(c.endOf(at('2026-03-06T21:00:00Z'))).toEqual(at('2026-03-09T07:30:00Z'));
    expect(c.windowAt(at('2026-03-08T12:00:00Z'))?.text).toBe('sat,sun 00:00-24:00');
  });

  it("reads the clock in the daemon's time zone", () => {
    // 09:00 in Berlin (UTC+1 in winter) is 08:00 UTC.
    const c = calendar('mon-fri 09:00-17:00', 'Europe/Berlin');
    expect(c.endOf(at('2026-03-02T07:59:00Z'))).toBeUndefined();
    expect(c.endOf(at('2026-03-02T08:00:00Z'))).toEqual(at('2026-03-02T16:00:00Z'));
  });

  it('refuses malformed windows with what to write instead', () => {
    const tail = 'Write it as [DAYS ]HH:MM-HH:MM, e.g. "22:00-06:00" or "mon-fri 08:00-18:00" (in the daemon\'s time zone).';
    expect(() => parseBlackoutWindow('8-18')).toThrow(`blackout window "8-18" is not valid: "8" is not a time of day. ${tail}`);
    expect(() => parseBlackoutWindow('funday 08:00-09:00')).toThrow(`blackout window "funday 08:00-09:00" is not valid: "funday" is not a day or day range (mon, tue, wed, thu, fri, sat, sun). ${tail}`);
    expect(() => parseBlackoutWindow('10:00-10:00')).toThrow(`blackout window "10:00-10:00" is not valid: it starts and ends at the same time. ${tail}`);
    expect(() => parseBlackoutWindow('always')).toThrow(`blackout window "always" is not valid: it is not of the form [DAYS ]START-END. ${tail}`);
    expect(parseBlackoutWindow('fri-mon 01:00:30-02:00').days).toEqual(new Set([5, 6, 0, 1]));
  });
});

describe('cron schedules', () => {
  it('finds the slots just before and after a moment, with seconds', () => {
    const s = CronSchedule.parse('*/15 * * * * *', 'UTC');
    expect(s.previous(at('2026-03-02T10:00:07.500Z'))).toEqual(at('2026-03-02T10:00:00Z'));
    expect(s.previous(at('2026-03-02T10:00:15Z'))).toEqual(at('2026-03-02T10:00:00Z'));
    expect(s.next(at('2026-03-02T10:00:07Z'))).toEqual(at('2026-03-02T10:00:15Z'));
  });

  it('keeps a daily local time across a daylight-saving change', () => {
    const s = CronSchedule.parse('0 3 * * *', 'Europe/Berlin');
    // Summer time starts 2026-03-29: 03:00 local is 01:00 UTC from then on, 02:00 UTC before.
    expect(s.next(at('2026-03-28T12:00:00Z'))).toEqual(at('2026-03-29T01:00:00Z'));
    expect(s.previous(at('2026-03-29T00:00:00Z'))).toEqual(at('2026-03-28T02:00:00Z'));
  });

  it('refuses bad expressions and unknown time zones with an example of a good one', () => {
    expect(() => CronSchedule.parse('0 3 * *', 'UTC', 'the schedule of client "web1"')).toThrow('the schedule of client "web1" "0 3 * *" is not a valid cron expression (it has 4 field(s)). Use 5 fields (minute hour day-of-month month day-of-week), e.g. "0 3 * * *" for 03:00 every day, or 6 with seconds first.');
    expect(() => CronSchedule.parse('0 25 * * *', 'UTC')).toThrow('the schedule "0 25 * * *" is not a valid cron expression (Constraint error, got value 25 expected range 0-23).');
    expect(() => checkTimeZone('Mars/Olympus')).toThrow('"Mars/Olympus" is not a time zone this system knows; use an IANA name such as "Europe/Berlin", "America/New_York" or "UTC".');
  });
});

describe('retry backoff', () => {
  const policy = { maxAttempts: 4, baseDelayMs: 1_000, maxDelayMs: 3_000 };
  it('doubles the wait for transient causes, up to a cap and a number of tries', () => {
    expect([1, 2, 3, 4].map((n) => retryDelay(policy, 'unreachable', n))).toEqual([1_000, 2_000, 3_000, undefined]);
    expect(retryDelay(policy, 'connection-lost', 1)).toBe(1_000);
  });
  it('never retries a hostile or permanent cause', () => {
    for (const cause of ['host-key-changed', 'auth-refused', 'protocol-violation', 'probe-error', 'storage-error', 'timeout', 'cancelled', 'daemon-restart', 'client-config', 'internal']) {
      expect([cause, retryDelay(policy, cause, 1)]).toEqual([cause, undefined]);
    }
  });
});

describe('daemon configuration', () => {
  const base = { passphrase: 'x', repository: '/r', probeDir: '/p' };
  it('takes each value from the options, else the environment, else the Setting table, else the default', () => {
    const settings = new Map([['timeZone', '"Asia/Tokyo"'], ['maxConcurrentJobs', '3'], ['blackoutWindows', '["22:00-06:00"]']]);
    const fromSettings = resolveDaemonConfig(base, {}, settings);
    expect([fromSettings.timeZone, fromSettings.maxConcurrentJobs, fromSettings.blackout.map((w) => w.text)]).toEqual(['Asia/Tokyo', 3, ['22:00-06:00']]);
    const fromEnv = resolveDaemonConfig(base, { HAUL_TIME_ZONE: 'UTC', HAUL_MAX_JOBS: '7', HAUL_BLACKOUT: 'sat 00:00-24:00; sun 00:00-12:00', HAUL_GRACE: '90', HAUL_JOB_TIMEOUT: '2h', HAUL_HTTP_PORT: 'off' }, settings);
    expect([fromEnv.timeZone, fromEnv.maxConcurrentJobs, fromEnv.blackout.map((w) => w.text), fromEnv.graceMs, fromEnv.timeouts.totalMs, fromEnv.http]).toEqual(['UTC', 7, ['sat 00:00-24:00', 'sun 00:00-12:00'], 90_000, 7_200_000, undefined]);
    const fromOptions = resolveDaemonConfig({ ...base, timeZone: 'Europe/Paris', maxConcurrentJobs: 1, blackout: [], http: { port: 0 } }, { HAUL_TIME_ZONE: 'UTC', HAUL_MAX_JOBS: '7' }, settings);
    expect([fromOptions.timeZone, fromOptions.maxConcurrentJobs, fromOptions.blackout, fromOptions.http]).toEqual(['Europe/Paris', 1, [], { host: '127.0.0.1', port: 0 }]);
    const defaults = resolveDaemonConfig(base, {}, new Map());
    expect([defaults.maxConcurrentJobs, defaults.http, defaults.graceMs, defaults.timeouts, defaults.retry]).toEqual([4, { host: '127.0.0.1', port: 7460 }, 60_000, { connectMs: 15_000, stallMs: 300_000, totalMs: 43_200_000 }, { maxAttempts: 4, baseDelayMs: 60_000, maxDelayMs: 1_800_000 }]);
  });

  it('records where consoles reach the bus: the Unix socket, the TCP endpoint with this host for a wildcard address, or what --bus-advertise says', () => {
    const home = { ...base, stateDir: '/var/lib/haul' };
    expect(resolveDaemonConfig(home, {}, new Map()).bus?.advertise).toBe('ipc:///var/lib/haul/run/commands.sock');
    expect(resolveDaemonConfig(home, { HAUL_BUS_TCP: 'tcp://0.0.0.0:7450' }, new Map()).bus?.advertise).toBe(`tcp://${os.hostname()}:7450`);
    expect(resolveDaemonConfig(home, { HAUL_BUS_TCP: 'tcp://10.0.0.5:7450' }, new Map()).bus?.advertise).toBe('tcp://10.0.0.5:7450');
    expect(resolveDaemonConfig({ ...home, bus: { advertise: 'tcp://backup1.example.org:7450' } }, { HAUL_BUS_TCP: 'tcp://0.0.0.0:7450' }, new Map()).bus?.advertise).toBe('tcp://backup1.example.org:7450');
    expect(resolveDaemonConfig({ ...home, bus: false }, {}, new Map()).bus).toBeUndefined();
    expect(() => resolveDaemonConfig(home, { HAUL_BUS_ADVERTISE: 'backup1:7450' }, new Map())).toThrow('"backup1:7450" is not a bus endpoint; write ipc:///path/to/commands.sock or tcp://host:port.');
  });

  it('says which value is wrong and how to write it', () => {
    expect(() => resolveDaemonConfig(base, { HAUL_MAX_JOBS: '0' }, new Map())).toThrow('the number of jobs run at once (--max-jobs, HAUL_MAX_JOBS) must be a whole number of at least 1, not "0".');
    expect(() => resolveDaemonConfig(base, { HAUL_HTTP_PORT: 'eighty' }, new Map())).toThrow('HAUL_HTTP_PORT "eighty" is not a TCP port (0-65535, 0 picks a free one), or "off".');
    expect(() => resolveDaemonConfig(base, {}, new Map([['timeZone', 'Berlin']]))).toThrow('the setting timeZone in the database is not JSON ("Berlin"); correct or delete that row of the Setting table.');
    expect(() => resolveDaemonConfig({ passphrase: 'x', probeDir: '/p' }, {}, new Map())).toThrow('no repository given. Pass --repo DIR or set HAUL_REPOSITORY.');
    expect(() => parseDuration('soon', '--grace')).toThrow('--grace "soon" is not a duration; write seconds ("90") or a number with ms, s, m, h or d ("500ms", "5m", "12h", "90d").');
    expect([parseDuration('500ms', 'x'), parseDuration('1.5m', 'x'), parseDuration('90', 'x')]).toEqual([500, 90_000, 90_000]);
  });
});
