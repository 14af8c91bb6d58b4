import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { open, unlink } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { startWriter } from "./inbox-writer.ts";
import type { VerifiedDelivery } from "./store.ts";

/**
 * The inbox: an append-only log of verified raw deliveries beside the SQLite file, the record that makes a
 * 200 durable on the embedded store (SPEC §3: "the verified raw delivery itself"). Appends are written into
 * the page cache on the loop and fdatasync'ed through libuv's thread pool, never waiting for the disk on the
 * event loop, and appends that arrive while one fdatasync is out share the next (group fsync). What is
 * applied to the store is recorded there (its position); after a crash everything past that position is
 * applied again, so nothing answered 200 is lost.
 *
 * Files: `<dir>/<segment, 12 digits>.log`. Each start-up writes a new segment; a segment reaching
 * `segmentBytes` is followed by the next, and so is one rolled (an erasure, or its records' age). A segment
 * is deleted once the store holds a durable position past it (or every record in it is applied, durably,
 * when it is dropped) and the intake has copied into the store the deliveries in it that carts still
 * waiting to be sent keep (sync/inbox-intake.ts: until then the inbox is where they are kept). A record is
 * `[u32 length][u32 crc32][u32 segment][u32 meta length][meta JSON][body]`, little-endian, the crc over
 * what follows it: a record cut short by a crash (never acknowledged, its fsync did not return) fails it
 * and ends the segment, and so does a record naming another segment.
 */

export interface InboxPosition {
  readonly segment: number;
  /** Byte offset in the segment just past the last applied record. */
  readonly offset: number;
}

/** A verified delivery as the inbox keeps it. */
export type InboxRecord = VerifiedDelivery;

export interface StoredRecord {
  readonly record: InboxRecord;
  /** The position just past this record. */
  readonly end: InboxPosition;
}

export interface InboxFile {
  /** Resolves with the record's end position once it is on disk (fdatasync returned); rejects otherwise. */
  append(record: InboxRecord): Promise<InboxPosition>;
  /** Deletes segments wholly before `applied` (a position the store holds durably). */
  release(applied: InboxPosition): Promise<void>;
  /** Records appended from now on start a new segment (unless the current one is empty); returns it. */
  roll(): number;
  /**
   * Deletes every segment before `first`, the one being appended to included if it is before: the caller
   * knows every record in them is applied, durably (an erasure, or their age).
   */
  dropBefore(first: number): Promise<void>;
  /** The oldest segment still on disk. */
  oldestSegment(): number;
  /** Waits for the writes out, then closes the file. */
  close(): Promise<void>;
}

export interface InboxOptions {
  /** A segment reaching this size is followed by the next (default 8 MiB). */
  readonly segmentBytes?: number;
}

const HEADER_BYTES = 16;
const SEGMENT_NAME = /^(\d{12})\.log$/;

export const segmentPath = (dir: string, segment: number): string =>
  join(dir, `${String(segment).padStart(12, "0")}.log`);

/**
 * Opens the inbox in `dir`: reads every record (cutting a torn tail off), deletes segments holding none (a
 * start that took no delivery), and starts a new segment for appends. `unapplied` is what lies past
 * `applied`; `retained`, what lies before it in segments not yet released (a crash came before the intake
 * copied what they keep into the store, or it was closed since).
 */
export async function openInbox(
  dir: string,
  applied: InboxPosition | undefined,
  opts: InboxOptions = {},
): Promise<{ inbox: InboxFile; unapplied: StoredRecord[]; retained: StoredRecord[] }> {
  mkdirSync(dir, { recursive: true });
  const segments = readSegments(dir);
  const kept: number[] = [];
  for (const { segment, records } of segments) {
    if (records.length === 0) await unlink(segmentPath(dir, segment));
    else kept.push(segment);
  }
  const first = Math.max(applied?.segment ?? 0, ...segments.map((s) => s.segment)) + 1;
  const inbox = await startWriter(dir, { first, older: kept }, opts.segmentBytes ?? 8 * 1024 * 1024);
  const all = segments.flatMap((s) => s.records);
  const isApplied = (r: StoredRecord): boolean => applied !== undefined && !isAfter(r.end, applied);
  return { inbox, unapplied: all.filter((r) => !isApplied(r)), retained: all.filter(isApplied) };
}

const isAfter = (a: InboxPosition, b: InboxPosition): boolean =>
  a.segment > b.segment || (a.segment === b.segment && a.offset > b.offset);

/** Every segment in `dir`, oldest first, with every record it holds. */
function readSegments(dir: string): Array<{ segment: number; records: StoredRecord[] }> {
  return segmentNumbers(dir).map((segment) => ({
    segment,
    records: readSegment(segment, readFileSync(segmentPath(dir, segment)), 0),
  }));
}

function segmentNumbers(dir: string): number[] {
  return readdirSync(dir)
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * Every segment in `dir`, oldest first, with the records it holds past `applied` (none for a segment behind
 * it). Only reads: the crash suite uses it on what a killed process left.
 */
export function readUnapplied(
  dir: string,
  applied: InboxPosition | undefined,
): Array<{ segment: number; records: StoredRecord[] }> {
  return segmentNumbers(dir).map((segment) => {
    if (applied !== undefined && segment < applied.segment) return { segment, records: [] };
    const from = applied !== undefined && segment === applied.segment ? applied.offset : 0;
    return { segment, records: readSegment(segment, readFileSync(segmentPath(dir, segment)), from) };
  });
}

/**
 * The records of one segment from `from` on. Stops at the first record that is cut short, corrupt or
 * naming another segment (a file copied or renamed into this name).
 */
export function readSegment(segment: number, data: Buffer, from: number, copyBodies = true): StoredRecord[] {
  const out: StoredRecord[] = [];
  let at = from;
  while (at + HEADER_BYTES <= data.length) {
    const length = data.readUInt32LE(at);
    const end = at + 8 + length;
    if (end > data.length) break;
    if (length < 8 || crc32(data.subarray(at + 8, end)) !== data.readUInt32LE(at + 4)) break;
    if (data.readUInt32LE(at + 8) !== segment) break;
    const metaLength = data.readUInt32LE(at + 12);
    if (HEADER_BYTES + metaLength > 8 + length) break;
    const metaEnd = at + HEADER_BYTES + metaLength;
    const meta = JSON.parse(data.toString("utf8", at + HEADER_BYTES, metaEnd)) as Meta;
    out.push({
      record: {
        webhookId: meta.w ?? undefined,
        topic: meta.t,
        shopDomain: meta.s,
        receivedAtMs: meta.r,
        headers: meta.h,
        body: copyBodies ? Buffer.from(data.subarray(metaEnd, end)) : data.subarray(metaEnd, end),
      },
      end: { segment, offset: end },
    });
    at = end;
  }
  return out;
}

interface Meta {
  readonly w: string | null;
  readonly t: string;
  readonly s: string;
  readonly r: number;
  readonly h: Readonly<Record<string, string>>;
}

const metaText = (record: InboxRecord): string =>
  JSON.stringify({
    w: record.webhookId ?? null,
    t: record.topic,
    s: record.shopDomain,
    r: record.receivedAtMs,
    h: record.headers,
  } satisfies Meta);

/** The record's bytes: a header buffer (length, crc, segment, meta) and the body itself (not copied). */
export function encodeRecord(record: InboxRecord, segment: number): [Buffer, Buffer] {
  const meta = metaText(record);
  const metaLength = Buffer.byteLength(meta);
  const head = Buffer.allocUnsafe(HEADER_BYTES + metaLength);
  head.writeUInt32LE(8 + metaLength + record.body.length, 0);
  head.writeUInt32LE(segment, 8);
  head.writeUInt32LE(metaLength, 12);
  head.write(meta, HEADER_BYTES, "utf8");
  head.writeUInt32LE(crc32(record.body, crc32(head.subarray(8))), 4);
  return [head, record.body];
}

/** Where a stored record lies: the position just past it and how many bytes it takes. */
export interface RecordPlace {
  readonly end: InboxPosition;
  readonly bytes: number;
}

/** Where `record`, appended to end at `end`, lies (the same bytes encodeRecord wrote). */
export function placeOf(record: InboxRecord, end: InboxPosition): RecordPlace {
  return { end, bytes: HEADER_BYTES + Buffer.byteLength(metaText(record)) + record.body.length };
}

/**
 * Reads the records at `places`, all in `segment`, with one read of the span they lie in (off a segment
 * still on disk, through the thread pool): each is undefined when not found there whole (the segment is
 * gone, or the place is wrong).
 */
export async function readRecordsAt(
  dir: string,
  segment: number,
  places: readonly RecordPlace[],
): Promise<Array<InboxRecord | undefined>> {
  if (places.length === 0) return [];
  const from = Math.min(...places.map((p) => p.end.offset - p.bytes));
  const to = Math.max(...places.map((p) => p.end.offset));
  let file;
  try {
    file = await open(segmentPath(dir, segment), "r");
  } catch {
    return places.map(() => undefined);
  }
  try {
    const span = Buffer.allocUnsafe(to - from);
    const { bytesRead } = await file.read(span, 0, span.length, from);
    return places.map((p) => {
      const start = p.end.offset - p.bytes - from;
      return start + p.bytes <= bytesRead
        ? decodeOne(segment, span.subarray(start, start + p.bytes), p)
        : undefined;
    });
  } finally {
    await file.close();
  }
}

/** readRecordsAt for one record, on the calling thread (a dead letter's rare read, from the page cache). */
export function readRecordAtSync(dir: string, place: RecordPlace): InboxRecord | undefined {
  let fd;
  try {
    fd = openSync(segmentPath(dir, place.end.segment), "r");
  } catch {
    return undefined;
  }
  try {
    const data = Buffer.allocUnsafe(place.bytes);
    const read = readSync(fd, data, 0, place.bytes, place.end.offset - place.bytes);
    return decodeOne(place.end.segment, data.subarray(0, read), place);
  } finally {
    closeSync(fd);
  }
}

function decodeOne(segment: number, data: Buffer, place: RecordPlace): InboxRecord | undefined {
  // A view of the buffer read, which holds nothing else kept.
  const [found] = readSegment(segment, data, 0, false);
  return found !== undefined && found.end.offset === place.bytes ? found.record : undefined;
}
