// A client's schedule: a cron expression (5 fields, or 6 with seconds first) read in the daemon's
// time zone. node-schedule fires the future slots; the same parser (cron-parser, which
// node-schedule uses inside) finds the past ones, so catch-up and firing never disagree on what
// a slot is.
import cronParser from 'cron-parser';
import { HaulError } from '../../shared/errors.js';

/** The time zone if the runtime knows it; otherwise an error that says what to use. */
export function checkTimeZone(timeZone: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    throw new HaulError('InvalidArgument', `${JSON.stringify(timeZone)} is not a time zone this system knows; use an IANA name such as "Europe/Berlin", "America/New_York" or "UTC".`);
  }
}

export function defaultTimeZone(): string {
  return new Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export class CronSchedule {
  private constructor(readonly expression: string, readonly timeZone: string) {}

  /** Checks the expression; `owner` names whose schedule it is in the error. */
  static parse(expression: string, timeZone: string, owner = 'the schedule'): CronSchedule {
    const fields = expression.trim().split(/\s+/);
    let problem: string | undefined;
    if (fields.length !== 5 && fields.length !== 6) {
      problem = `it has ${fields.length} field(s)`;
    } else {
      try {
        cronParser.parseExpression(expression, { tz: timeZone });
      } catch (err) {
        problem = (err as Error).message;
      }
    }
    if (problem !== undefined) {
      throw new HaulError('InvalidArgument', `${owner} ${JSON.stringify(expression)} is not a valid cron expression (${problem}). Use 5 fields (minute hour day-of-month month day-of-week), e.g. "0 3 * * *" for 03:00 every day, or 6 with seconds first.`);
    }
    return new CronSchedule(fields.join(' '), timeZone);
  }

  /** The latest slot strictly before `before`, or undefined if there is none. */
  previous(before: Date): Date | undefined {
    const it = cronParser.parseExpression(this.expression, { currentDate: before, tz: this.timeZone });
    return it.hasPrev() ? it.prev().toDate() : undefined;
  }

  /** The first slot strictly after `after`, or undefined if there is none. */
  next(after: Date): Date | undefined {
    const it = cronParser.parseExpression(this.expression, { currentDate: after, tz: this.timeZone });
    return it.hasNext() ? it.next().toDate() : undefined;
  }
}
