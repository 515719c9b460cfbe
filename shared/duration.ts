// Durations as operators write them ("90", "500ms", "5m", "12h", "90d"), for the daemon's options
// and the CLI's environment alike. Kept apart from the daemon's configuration so that a CLI
// command can read one without loading that module.
import { HaulError } from './errors.js';

/** "90", "90s", "1.5m", "500ms", "12h", "90d": a duration in milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new HaulError('InvalidArgument', `${what} ${JSON.stringify(text)} is not a duration; write seconds ("90") or a number with ms, s, m, h or d ("500ms", "5m", "12h", "90d").`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 's']!;
  return Math.round(Number(m[1]) * unit);
}
