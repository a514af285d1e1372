/**
 * How many hash slots Redis Cluster divides the keys into.
 *
 * @example
 * ```ts
 * hashSlot('a') < HASH_SLOTS; // true
 * ```
 */
export const HASH_SLOTS = 16384;

/**
 * The Redis Cluster hash slot of a key or channel: CRC16 (XMODEM) of its
 * UTF-8 bytes modulo 16384, or of its hash tag only, when it has one (the
 * text between the first `{` and the next `}`, if not empty).
 *
 * @example
 * ```ts
 * hashSlot('foo'); // 12182, as `CLUSTER KEYSLOT foo` says
 * hashSlot('wl:{7}:spec:a') === hashSlot('7'); // true
 * ```
 * @param key A key or a channel name.
 * @returns 0 to 16383.
 */
export function hashSlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return crc16(Buffer.from(key.slice(open + 1, close))) % HASH_SLOTS;
  }
  return crc16(Buffer.from(key)) % HASH_SLOTS;
}

/**
 * CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis Cluster computes it.
 *
 * @example
 * ```ts
 * crc16(Buffer.from('123456789')); // 0x31c3
 * ```
 * @param bytes The input.
 * @returns 0 to 65535.
 */
export function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) ^ TABLE[((crc >> 8) ^ byte) & 0xff]) & 0xffff;
  return crc;
}

const TABLE = Uint16Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  return crc & 0xffff;
});
