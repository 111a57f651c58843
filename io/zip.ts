/**
 * A strict reader for the zip archives `torch.save` writes (stored members, a central directory,
 * zip64 records): the directory is parsed once, every member's local header must agree with it,
 * members may not overlap each other or the directory, and a member's bytes are handed out only
 * after their CRC-32 matches the directory's (as Python's zipfile and torch's miniz check).
 *
 * Why not fflate's `unzipSync`: it never checks CRC-32 (a one-bit flip in a tensor imported as
 * different weights), clamps out-of-range members silently instead of refusing them, and stores
 * members in a plain object keyed by names from the file (`__proto__` included). fflate is still
 * the project's zip writer (tests build archives with `zipSync`).
 *
 * Errors are thrown as `ZipError` (with the member's name where one is involved); callers turn them
 * into values.
 */
import * as zlib from 'node:zlib';

export class ZipError extends Error {
  constructor(
    message: string,
    readonly hint = '',
  ) {
    super(message);
    this.name = 'ZipError';
  }
}

export interface ZipMember {
  readonly name: string;
  /** 0 = stored; anything else is reported by `memberBytes` (torch writes stored members only). */
  readonly compression: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  /** Offset of the member's data (past its local header) in the archive. */
  readonly dataOffset: number;
}

export interface ZipDirectory {
  /** By name, in central-directory order. */
  readonly members: ReadonlyMap<string, ZipMember>;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_U32 = 0xffffffff;
const MAX_U16 = 0xffff;
/** Smallest central-directory record: 46 bytes plus the name (at least one byte). */
const MIN_CENTRAL = 47;

const bad = (message: string, hint = ''): never => {
  throw new ZipError(message, hint);
};

// ---------------------------------------------------------------------------------------------
// CRC-32 (ISO 3309, the zip and PNG one)

let table: Uint32Array | undefined;

/** The table-driven CRC-32, for Node versions without `zlib.crc32` (added in 20.15). */
export const crc32Js = (bytes: Uint8Array): number => {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** CRC-32 of `bytes` (zlib's native one where this Node has it). */
export const crc32 = (bytes: Uint8Array): number => (nativeCrc32 !== undefined ? nativeCrc32(bytes) >>> 0 : crc32Js(bytes));

// ---------------------------------------------------------------------------------------------
// Reading

const utf8 = new TextDecoder('utf-8', { fatal: true });
const cp437ish = new TextDecoder('latin1');

/** `bytes` as a zip archive's directory; throws ZipError. */
export const readZipDirectory = (bytes: Uint8Array): ZipDirectory => {
  const n = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number): number => view.getUint16(at, true);
  const u32 = (at: number): number => view.getUint32(at, true);
  /** A 64-bit field that must fit inside the archive. */
  const u64 = (at: number, what: string): number => {
    const v = view.getBigUint64(at, true);
    if (v > BigInt(n)) bad(`zip64 ${what} ${v} lies beyond the end of the archive (${n} bytes)`);
    return Number(v);
  };
  if (n < 22) bad(`${n} bytes is too short for a zip archive`);

  // The end-of-central-directory record: the last signature within the final 64 KiB + 22 bytes
  // (22 fixed bytes, then a comment of up to 65,535).
  let e = -1;
  for (let at = n - 22; at >= Math.max(0, n - 22 - MAX_U16); at--) {
    if (u32(at) === EOCD && at + 22 + u16(at + 20) <= n) {
      e = at;
      break;
    }
  }
  if (e < 0) bad('no end-of-central-directory record (truncated, or not a zip archive)');
  if (u16(e + 4) !== 0 || u16(e + 6) !== 0) bad('multi-disk zip archives are not supported');
  let count = u16(e + 10);
  if (u16(e + 8) !== count) bad('zip directory entry counts disagree');
  let cdSize = u32(e + 12);
  let cdOffset = u32(e + 16);
  let cdLimit = e; // the directory must end before the record that describes it
  if (e >= 20 && u32(e - 20) === ZIP64_LOCATOR) {
    const z = u64(e - 12, 'end record offset');
    if (z + 56 > e - 20 || u32(z) !== ZIP64_EOCD) bad('zip64 locator points at no zip64 end record');
    if (u32(z + 16) !== 0 || u32(z + 20) !== 0) bad('multi-disk zip archives are not supported');
    const c64 = u64(z + 24, 'entry count');
    if (u64(z + 32, 'entry count') !== c64) bad('zip64 directory entry counts disagree');
    count = c64;
    cdSize = u64(z + 40, 'directory size');
    cdOffset = u64(z + 48, 'directory offset');
    cdLimit = z;
  } else if (count === MAX_U16 || cdSize === MAX_U32 || cdOffset === MAX_U32) {
    bad('zip end record asks for zip64 records that are missing');
  }
  if (cdOffset + cdSize > cdLimit) bad(`zip central directory (${cdSize} bytes at ${cdOffset}) overlaps its end record or the file's end`);
  if (count * MIN_CENTRAL > cdSize) bad(`zip claims ${count} entries, more than its ${cdSize}-byte directory can hold`);

  const members = new Map<string, ZipMember>();
  const spans: Array<readonly [number, number, string]> = [];
  let p = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdEnd || u32(p) !== CENTRAL) bad(`zip central directory entry ${i} is corrupt (bad signature or out of range)`);
    const flags = u16(p + 8);
    const compression = u16(p + 10);
    const crc = u32(p + 16);
    let compressedSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    if (u16(p + 34) !== 0) bad(`zip central directory entry ${i} is on another disk`);
    let localOffset = u32(p + 42);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cdEnd) bad(`zip central directory entry ${i} runs past the directory`);
    const rawName = bytes.subarray(p + 46, p + 46 + nameLen);
    let name: string;
    try {
      name = flags & 0x800 ? utf8.decode(rawName) : cp437ish.decode(rawName);
    } catch {
      return bad(`zip entry ${i} has a name that is not valid UTF-8`);
    }
    const where = `zip member '${name}'`;
    if (name === '') bad(`zip entry ${i} has no name (corrupt central directory?)`);
    if (members.has(name)) bad(`${where} appears twice in the directory`);
    if (flags & 0x1) bad(`${where} is encrypted`);
    // zip64 extra field (id 1): the 64-bit values of the fields saturated at 0xffffffff, in order.
    if (size === MAX_U32 || compressedSize === MAX_U32 || localOffset === MAX_U32) {
      let q = p + 46 + nameLen;
      const extraEnd = q + extraLen;
      let found = false;
      while (q + 4 <= extraEnd) {
        const id = u16(q);
        const len = u16(q + 2);
        if (q + 4 + len > extraEnd) break;
        if (id === 1) {
          let r = q + 4;
          const take = (what: string): number => {
            if (r + 8 > q + 4 + len) bad(`${where}: zip64 extra field lacks its ${what}`);
            const v = u64(r, `${what} of ${where}`);
            r += 8;
            return v;
          };
          if (size === MAX_U32) size = take('size');
          if (compressedSize === MAX_U32) compressedSize = take('compressed size');
          if (localOffset === MAX_U32) localOffset = take('header offset');
          found = true;
          break;
        }
        q += 4 + len;
      }
      if (!found) bad(`${where} needs a zip64 extra field that is missing`);
    }
    // The local header must agree with the directory (Python's zipfile checks the name too).
    if (localOffset + 30 > cdOffset || u32(localOffset) !== LOCAL) bad(`${where}: no local header at offset ${localOffset}`);
    const lFlags = u16(localOffset + 6);
    const lNameLen = u16(localOffset + 26);
    const lExtraLen = u16(localOffset + 28);
    const dataOffset = localOffset + 30 + lNameLen + lExtraLen;
    if (dataOffset > cdOffset) bad(`${where}: local header runs into the central directory`);
    const lName = bytes.subarray(localOffset + 30, localOffset + 30 + lNameLen);
    if (lNameLen !== nameLen || !lName.every((b, k) => b === rawName[k])) bad(`${where}: local header names another file`);
    if (u16(localOffset + 8) !== compression) bad(`${where}: local header and directory disagree on the compression`);
    if ((lFlags & 0x8) === 0) {
      // Without a data descriptor, the local header carries the CRC and sizes itself.
      const lc = u32(localOffset + 14);
      const ls = u32(localOffset + 18);
      const lu = u32(localOffset + 22);
      if (lc !== crc || (ls !== MAX_U32 && ls !== (compressedSize >>> 0)) || (lu !== MAX_U32 && lu !== (size >>> 0))) {
        bad(`${where}: local header and directory disagree on its CRC or size`);
      }
    }
    if (compression === 0 && compressedSize !== size) bad(`${where} is stored but its sizes differ (${compressedSize} and ${size})`);
    if (dataOffset + compressedSize > cdOffset) {
      bad(`${where} (${compressedSize} bytes at ${dataOffset}) runs past the start of the central directory (truncated?)`);
    }
    members.set(name, { name, compression, crc, compressedSize, size, dataOffset });
    spans.push([localOffset, dataOffset + compressedSize, name]);
    p = next;
  }
  // No two members may share bytes (overlapping members are how zip bombs multiply their data).
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) bad(`zip members '${spans[i - 1]![2]}' and '${spans[i]![2]}' overlap`);
  }
  return { members };
};

/**
 * A stored member's bytes (a view into `bytes`), after checking its CRC-32. Compressed members are
 * refused: torch.save never writes them, and inflating is unbounded work.
 */
export const memberBytes = (bytes: Uint8Array, m: ZipMember): Uint8Array => {
  if (m.compression !== 0) {
    bad(`zip member '${m.name}' is compressed (method ${m.compression}); torch.save writes uncompressed members`, 're-save the checkpoint with torch.save');
  }
  const data = bytes.subarray(m.dataOffset, m.dataOffset + m.size);
  const actual = crc32(data);
  if (actual !== m.crc) {
    bad(
      `zip member '${m.name}' is corrupt: its CRC-32 is ${hex(actual)}, the directory says ${hex(m.crc)}`,
      'the file was damaged in transfer or on disk: download or copy it again',
    );
  }
  return data;
};

const hex = (v: number): string => `0x${v.toString(16).padStart(8, '0')}`;
