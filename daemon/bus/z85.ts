// Z85 (ZeroMQ RFC 32), the text form of CURVE keys: ZAP hands the daemon a client's public key
// as 32 raw bytes, the authorized-clients file lists keys as 40 characters.
const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

export function z85Encode(bytes: Uint8Array): string {
  if (bytes.byteLength % 4 !== 0) throw new RangeError(`Z85 encodes multiples of 4 bytes, not ${bytes.byteLength}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < bytes.byteLength; i += 4) {
    let value = view.getUint32(i);
    let group = '';
    for (let j = 0; j < 5; j++) {
      group = alphabet[value % 85]! + group;
      value = Math.floor(value / 85);
    }
    out += group;
  }
  return out;
}
