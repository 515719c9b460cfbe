// Which snapshots a retention policy keeps. Pure: snapshots in, a keep/forget decision with
// reasons out, so `haul forget --dry-run` shows exactly what a real run does. The rules follow
// restic's (familiar to operators): each "keep N <period>" keeps the newest snapshot in each of
// the N newest periods that have one. Periods are calendar periods in the server's time zone
// (TZ); weeks are ISO weeks. "Within" counts back from the client's newest snapshot, not from
// now, so a client that stopped backing up does not age out of its own history.
import { HaulError } from '../../shared/errors.js';

export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration such as "30d", "12h", "2w", "6m" (months), "1y". */
  keepWithin?: string;
  /** Snapshots with any of these tags are always kept. */
  keepTags?: string[];
}

export interface RetentionSubject {
  id: string;
  time: string;
  tags: string[];
}

export interface RetentionDecision<T extends RetentionSubject> {
  snapshot: T;
  keep: boolean;
  reasons: string[];
}

const countRules = [
  ['keepLast', 'last'],
  ['keepHourly', 'hourly'],
  ['keepDaily', 'daily'],
  ['keepWeekly', 'weekly'],
  ['keepMonthly', 'monthly'],
  ['keepYearly', 'yearly'],
] as const;

function isoWeek(d: Date): string {
  // The ISO year and week: the week with the year's first Thursday is week 1.
  const t = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const day = (t.getDay() + 6) % 7;
  t.setDate(t.getDate() - day + 3);
  const firstThursday = new Date(t.getFullYear(), 0, 4);
  const week = 1 + Math.round(((t.getTime() - firstThursday.getTime()) / 86_400_000 - 3 + ((firstThursday.getDay() + 6) % 7)) / 7);
  return `${t.getFullYear()}-W${week}`;
}

const bucketOf: Record<(typeof countRules)[number][1], (d: Date, id: string) => string> = {
  last: (_d, id) => id,
  hourly: (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}T${d.getHours()}`,
  daily: (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`,
  weekly: (d) => isoWeek(d),
  monthly: (d) => `${d.getFullYear()}-${d.getMonth()}`,
  yearly: (d) => `${d.getFullYear()}`,
};

/** Milliseconds back from a moment, calendar-aware for months and years. */
export function parseDuration(text: string): (from: Date) => Date {
  const m = /^(\d+)([hdwmy])$/.exec(text.trim());
  if (!m) throw new HaulError('InvalidArgument', `${JSON.stringify(text)} is not a duration; write a number and a unit: h (hours), d (days), w (weeks), m (months) or y (years), e.g. 30d.`);
  const n = Number(m[1]);
  return (from) => {
    const d = new Date(from);
    switch (m[2]) {
      case 'h': d.setHours(d.getHours() - n); break;
      case 'd': d.setDate(d.getDate() - n); break;
      case 'w': d.setDate(d.getDate() - 7 * n); break;
      case 'm': d.setMonth(d.getMonth() - n); break;
      default: d.setFullYear(d.getFullYear() - n);
    }
    return d;
  };
}

export function validatePolicy(policy: RetentionPolicy): void {
  for (const [key] of countRules) {
    const v = policy[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new HaulError('InvalidArgument', `${key} must be a whole number of 0 or more, not ${JSON.stringify(v)}.`);
  }
  if (policy.keepWithin !== undefined) parseDuration(policy.keepWithin);
  const keepsSomething = countRules.some(([key]) => (policy[key] ?? 0) > 0) || policy.keepWithin !== undefined || (policy.keepTags?.length ?? 0) > 0;
  if (!keepsSomething) {
    throw new HaulError('InvalidArgument', 'this retention policy keeps nothing, so it would forget every snapshot. Give at least one keep rule (e.g. --keep-daily 7); to remove a client\'s snapshots on purpose, forget them by ID.');
  }
}

/** Applies a policy to one client's snapshots; returns them newest first with the decision. */
export function applyRetention<T extends RetentionSubject>(snapshots: readonly T[], policy: RetentionPolicy): RetentionDecision<T>[] {
  validatePolicy(policy);
  const sorted = [...snapshots].sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id));
  const decisions = sorted.map((snapshot) => ({ snapshot, keep: false, reasons: [] as string[] }));
  for (const [key, label] of countRules) {
    const n = policy[key] ?? 0;
    if (n <= 0) continue;
    const seen = new Set<string>();
    for (const d of decisions) {
      if (seen.size >= n) break;
      const bucket = bucketOf[label](new Date(d.snapshot.time), d.snapshot.id);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      d.keep = true;
      d.reasons.push(label);
    }
  }
  const newest = decisions[0];
  if (policy.keepWithin !== undefined && newest) {
    const cutoff = parseDuration(policy.keepWithin)(new Date(newest.snapshot.time)).getTime();
    for (const d of decisions) {
      if (Date.parse(d.snapshot.time) >= cutoff) {
        d.keep = true;
        d.reasons.push(`within ${policy.keepWithin}`);
      }
    }
  }
  if (policy.keepTags?.length) {
    for (const d of decisions) {
      const tag = d.snapshot.tags.find((t) => policy.keepTags!.includes(t));
      if (tag !== undefined) {
        d.keep = true;
        d.reasons.push(`tag ${tag}`);
      }
    }
  }
  return decisions;
}
