import { describe, expect, it } from 'vitest';
import { applyRetention, validatePolicy } from '../../../daemon/maintenance/retention-policy.js';

process.env['TZ'] = 'UTC';

// One snapshot every 6 hours for 40 days (160 snapshots), newest last, a "release" tag on two.
const snapshots = Array.from({ length: 160 }, (_, i) => ({
  id: `s${String(i).padStart(3, '0')}`,
  time: new Date(Date.UTC(2026, 0, 1) + i * 6 * 3_600_000).toISOString(),
  tags: i === 3 || i === 50 ? ['release'] : [],
}));

const kept = (policy: Parameters<typeof applyRetention>[1]) =>
  applyRetention(snapshots, policy).filter((d) => d.keep).map((d) => `${d.snapshot.id}:${d.reasons.join('+')}`);

describe('retention policy', () => {
  it('keep-last keeps exactly the newest n', () => {
    expect(kept({ keepLast: 3 })).toEqual(['s159:last', 's158:last', 's157:last']);
  });

  it('keep-daily keeps the newest snapshot of each of the last n days that have one', () => {
    // Day 39 (Feb 9) holds s156..s159; its newest is s159; day 38's newest is s155, and so on.
    expect(kept({ keepDaily: 3 })).toEqual(['s159:daily', 's155:daily', 's151:daily']);
  });

  it('keep-weekly uses ISO weeks and keep-monthly calendar months', () => {
    // Jan 1 2026 is a Thursday: ISO week 1 runs Dec 29 - Jan 4. s159 is Feb 9 18:00 (week 7).
    expect(kept({ keepWeekly: 2 })).toEqual(['s159:weekly', 's155:weekly']);
    expect(kept({ keepMonthly: 5 })).toEqual(['s159:monthly', 's123:monthly']);
  });

  it('rules combine and each kept snapshot lists every rule that keeps it', () => {
    expect(kept({ keepLast: 2, keepDaily: 2, keepTags: ['release'] })).toEqual(['s159:last+daily', 's158:last', 's155:daily', 's050:tag release', 's003:tag release']);
  });

  it('keep-within counts back from the newest snapshot, not from now', () => {
    const d = applyRetention(snapshots, { keepWithin: '1d' });
    expect(d.filter((x) => x.keep).map((x) => x.snapshot.id)).toEqual(['s159', 's158', 's157', 's156', 's155']);
    expect(d).toHaveLength(160);
  });

  it('a policy that keeps nothing is refused, so a typo cannot forget everything', () => {
    expect(() => validatePolicy({})).toThrow("this retention policy keeps nothing, so it would forget every snapshot. Give at least one keep rule (e.g. --keep-daily 7); to remove a client's snapshots on purpose, forget them by ID.");
    expect(() => validatePolicy({ keepDaily: 0 })).toThrow(/keeps nothing/);
    expect(() => validatePolicy({ keepWithin: '3 days' })).toThrow('"3 days" is not a duration; write a number and a unit: h (hours), d (days), w (weeks), m (months) or y (years), e.g. 30d.');
    expect(() => validatePolicy({ keepLast: 1.5 })).toThrow('keepLast must be a whole number of 0 or more, not 1.5.');
  });
});
