// What the Statistics page plots, from /api/statistics's one point per snapshot: a client's
// snapshots as they are, the whole repository summed per UTC day, and the one-line summaries
// that say the plotted numbers in words.
import { formatDate, formatDuration } from './format';

export interface SnapshotPoint { client: string; time: string; bytes: number; bytesNew: number; bytesStored: number; bytesOnWire: number | null; durationMs: number }

/** One plotted moment: a snapshot, or a day of the whole repository. */
export interface Moment { time: string; label: string; bytes: number; bytesNew: number; bytesStored: number; bytesOnWire: number | null; durationMs: number }

export function clientMoments(points: SnapshotPoint[], client: string): Moment[] {
  return points.filter((p) => p.client === client).map((p) => ({ ...p, label: new Date(p.time).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) }));
}

/** Sums per UTC day over every client; a day's bytes on the wire are null only if no snapshot of it has any. */
export function repositoryMoments(points: SnapshotPoint[]): Moment[] {
  const days = new Map<string, Moment>();
  for (const p of points) {
    const day = p.time.slice(0, 10);
    const d = days.get(day) ?? { time: `${day}T00:00:00.000Z`, label: day, bytes: 0, bytesNew: 0, bytesStored: 0, bytesOnWire: null, durationMs: 0 };
    d.bytes += p.bytes;
    d.bytesNew += p.bytesNew;
    d.bytesStored += p.bytesStored;
    if (p.bytesOnWire !== null) d.bytesOnWire = (d.bytesOnWire ?? 0) + p.bytesOnWire;
    d.durationMs += p.durationMs;
    days.set(day, d);
  }
  return [...days.values()].sort((a, b) => a.time.localeCompare(b.time));
}

/** Snapshot size ÷ new bytes; null when nothing was new (everything deduplicated). */
export function dedupRatio(bytes: number, bytesNew: number): number | null {
  return bytesNew > 0 ? bytes / bytesNew : null;
}

export const formatRatio = (r: number) => `${r.toFixed(1)}×`;
/** Durations under ten seconds keep their fraction: a test backup takes milliseconds. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(ms / 1000);
}
export const exactBytes = (n: number) => `${n.toLocaleString('en-US')} B`;
export const exactMs = (n: number) => `${n.toLocaleString('en-US')} ms`;
export const exactRatio = (r: number) => r.toFixed(3);

/** "2 snapshots, 23 Nov 2026 to 24 Nov 2026" (or days): what every summary starts with. */
export function span(moments: Moment[], unit: 'snapshot' | 'day'): string {
  if (!moments.length) return `no ${unit}s`;
  const n = `${moments.length} ${unit}${moments.length === 1 ? '' : 's'}`;
  const first = formatDate(moments[0]!.time);
  const last = formatDate(moments.at(-1)!.time);
  return first === last ? `${n}, ${first}` : `${n}, ${first} to ${last}`;
}

/** Total, latest and highest of a byte or duration series, values that are null left out. */
export function sumSummary(values: (number | null)[], format: (n: number) => string): string {
  const known = values.filter((v): v is number => v !== null);
  if (!known.length) return 'no data';
  const missing = values.length - known.length;
  return `total ${format(known.reduce((a, b) => a + b, 0))}, latest ${format(known.at(-1)!)}, highest ${format(Math.max(...known))}${missing ? ` (${missing} without data)` : ''}`;
}
