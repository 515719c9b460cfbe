// File names and link targets are data, not text: shown anywhere (terminal, logs, console), they
// must not be able to forge a line or hide bytes. Valid UTF-8 prints as text with control
// characters escaped JSON-style; anything else prints byte by byte with non-ASCII as \xNN.
export function displayBytes(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(buf)) return JSON.stringify(text).slice(1, -1);
  let out = '';
  for (const b of buf) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

// Free text that may carry data from elsewhere (error messages naming files, a probe's stderr,
// anything read off the bus) shown on one line: C0 and C1 control characters, DEL, the Unicode
// line and paragraph separators and lone surrogates (which cannot be written as UTF-8) print as
// \n, \t, \r or \uXXXX, so the text can neither start a new line nor carry terminal escapes.
// Backslashes are left alone so ordinary messages stay readable.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const unsafeInText = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
export function displayText(text: string): string {
  return text.replace(unsafeInText, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Byte counts for people, in binary units (the CLI, job logs, notifications and the console). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A duration for people: `850 ms`, `12.3 s`, `4m 05s`, `3h 12m 05s`, `2d 03h 12m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  const [d, h, m, sec] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${two(h)}h ${two(m)}m`;
  if (h > 0) return `${h}h ${two(m)}m ${two(sec)}s`;
  return `${m}m ${two(sec)}s`;
}

/** A count with thousands separators, the same on every machine: 1,234,567. */
export function formatCount(n: number | bigint): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
