/**
 * CRC-32C (Castagnoli, the checksum of iSCSI, Google Cloud Storage and S3's `CRC32C`), written
 * here rather than taken from a package: the maintained ones are either native add-ons or
 * byte-at-a-time JS. This is the slicing-by-8 table method (8 KiB of tables, 8 bytes a step).
 */
const POLYNOMIAL = 0x82f63b78; // reflected Castagnoli polynomial

const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      const previous = tables[t - 1][n];
      tables[t][n] = (tables[0][previous & 0xff] ^ (previous >>> 8)) >>> 0;
    }
  }
  return tables;
})();

/** Incremental CRC-32C with the same update/digest shape as a node:crypto Hash. */
export class Crc32c {
  private crc = 0xffffffff;

  update(data: Uint8Array): this {
    const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES;
    let crc = this.crc;
    let i = 0;
    const fastEnd = data.length - (data.length % 8);
    for (; i < fastEnd; i += 8) {
      const low = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) ^ crc;
      crc =
        t7[low & 0xff] ^
        t6[(low >>> 8) & 0xff] ^
        t5[(low >>> 16) & 0xff] ^
        t4[low >>> 24] ^
        t3[data[i + 4]] ^
        t2[data[i + 5]] ^
        t1[data[i + 6]] ^
        t0[data[i + 7]];
    }
    for (; i < data.length; i++) crc = t0[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
    this.crc = crc >>> 0;
    return this;
  }

  /** Big-endian hex, as `gsutil hash -h` and `crc32c` tools print it. */
  digest(): string {
    return ((this.crc ^ 0xffffffff) >>> 0).toString(16).padStart(8, '0');
  }
}
