// Dates and labels for people. Times are shown in the browser's time zone.
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function formatDate(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

export const roleLabels = { admin: 'Admin', operator: 'Operator', auditor: 'Auditor' } as const;

/** An audit entry's details as "key: value" pairs; values are data, shown as text. */
export function detailPairs(detail: Record<string, unknown>): [string, string][] {
  return Object.entries(detail).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
}

/** Bytes for people, in binary units. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function stateClass(state: string): string {
  return state === 'succeeded' ? 'badge-ok' : state === 'failed' ? 'badge-danger' : state === 'cancelled' ? 'badge-neutral' : 'badge-accent';
}

/**
 * A file name for display: control characters (a newline in a name, an escape sequence) become
 * visible symbols, so a name cannot break a table row or pretend to be two names.
 */
export function visibleName(name: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return name.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '↵' : c === '\t' ? '⇥' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
