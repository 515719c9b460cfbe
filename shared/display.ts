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
