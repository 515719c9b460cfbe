// Blackout windows: wall-clock spans in the daemon's time zone during which no job starts (jobs
// already running go on; jobs due meanwhile wait in the queue). Written as
//   [DAYS ]HH:MM[:SS]-HH:MM[:SS]
// where DAYS is a comma list of days or day ranges (mon-fri, sat,sun); without DAYS every day.
// An end before the start runs past midnight into the next day (22:00-06:00); 24:00 is the end
// of the day.
import { HaulError } from '../../shared/errors.js';

const dayNames = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const daySeconds = 86_400;

export interface BlackoutWindow {
  /** As written, for messages and status. */
  text: string;
  /** Days it starts on, 0 = Sunday. */
  days: ReadonlySet<number>;
  /** Seconds after local midnight. */
  start: number;
  end: number;
}

function invalid(text: string, why: string): HaulError {
  return new HaulError('InvalidArgument', `blackout window ${JSON.stringify(text)} is not valid: ${why}. Write it as [DAYS ]HH:MM-HH:MM, e.g. "22:00-06:00" or "mon-fri 08:00-18:00" (in the daemon's time zone).`);
}

function parseClock(s: string, text: string): number {
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(s);
  if (!m) throw invalid(text, `${JSON.stringify(s)} is not a time of day`);
  const [h, min, sec] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (min > 59 || sec > 59 || h > 24 || (h === 24 && (min > 0 || sec > 0))) throw invalid(text, `${s} is not a time of day`);
  return h * 3600 + min * 60 + sec;
}

function parseDays(s: string, text: string): Set<number> {
  const days = new Set<number>();
  for (const part of s.toLowerCase().split(',')) {
    const [from, to] = part.split('-');
    const a = dayNames.indexOf(from ?? '');
    const b = to === undefined ? a : dayNames.indexOf(to);
    if (a < 0 || b < 0) throw invalid(text, `${JSON.stringify(part)} is not a day or day range (mon, tue, wed, thu, fri, sat, sun)`);
    for (let d = a; ; d = (d + 1) % 7) {
      days.add(d);
      if (d === b) break;
    }
  }
  return days;
}

export function parseBlackoutWindow(text: string): BlackoutWindow {
  const m = /^\s*(?:([A-Za-z,-]+)\s+)?(\S+)-(\S+)\s*$/.exec(text);
  if (!m) throw invalid(text, 'it is not of the form [DAYS ]START-END');
  const start = parseClock(m[2]!, text);
  const end = parseClock(m[3]!, text);
  if (start === end) throw invalid(text, 'it starts and ends at the same time');
  return { text: text.trim(), days: m[1] ? parseDays(m[1], text) : new Set([0, 1, 2, 3, 4, 5, 6]), start, end };
}

/** Windows separated by ";" (the form of HAUL_BLACKOUT and the blackoutWindows setting). */
export function parseBlackoutList(list: string): BlackoutWindow[] {
  return list.split(';').map((s) => s.trim()).filter((s) => s.length > 0).map(parseBlackoutWindow);
}

export class BlackoutCalendar {
  private readonly format: Intl.DateTimeFormat;

  constructor(readonly windows: readonly BlackoutWindow[], readonly timeZone: string) {
    this.format = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  /** Local weekday and seconds since local midnight. */
  private local(at: Date): { day: number; second: number } {
    const parts = Object.fromEntries(this.format.formatToParts(at).map((p) => [p.type, p.value]));
    return {
      day: dayNames.indexOf(String(parts['weekday']).toLowerCase().slice(0, 3)),
      second: Number(parts['hour']) * 3600 + Number(parts['minute']) * 60 + Number(parts['second']),
    };
  }

  /** Seconds from `at` until the window ends, if `at` is inside it. */
  private remaining(w: BlackoutWindow, at: { day: number; second: number }): number | undefined {
    const yesterday = (at.day + 6) % 7;
    if (w.start < w.end) return w.days.has(at.day) && at.second >= w.start && at.second < w.end ? w.end - at.second : undefined;
    if (w.days.has(at.day) && at.second >= w.start) return daySeconds - at.second + w.end;
    if (w.days.has(yesterday) && at.second < w.end) return w.end - at.second;
    return undefined;
  }

  /**
   * If `now` is inside a blackout window, the first moment after it that is in none (windows that
   * touch are one blackout); otherwise undefined. Wall-clock arithmetic: across a daylight-saving
   * change the end may be an hour off, and the queue simply asks again when it wakes.
   */
  endOf(now: Date): Date | undefined {
    let at = now;
    for (let hop = 0; hop < 16; hop++) {
      const local = this.local(at);
      let longest: number | undefined;
      for (const w of this.windows) {
        const r = this.remaining(w, local);
        if (r !== undefined && (longest === undefined || r > longest)) longest = r;
      }
      if (longest === undefined) return hop === 0 ? undefined : at;
      at = new Date(at.getTime() + longest * 1000 - (at.getTime() % 1000));
    }
    return at;
  }

  /** The window `now` is in, for messages. */
  windowAt(now: Date): BlackoutWindow | undefined {
    const local = this.local(now);
    return this.windows.find((w) => this.remaining(w, local) !== undefined);
  }
}
