import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { startWriter, type GroupWrite } from "./inbox-writer.ts";
import type { VerifiedDelivery } from "./store.ts";

/**
 * The inbox: an append-only log of verified raw deliveries beside the SQLite file, the record that makes a
 * 200 durable on the embedded store (SPEC §3: "the verified raw delivery itself"). Appends are written and
 * synced in libuv's thread pool (one O_DSYNC write on Linux, a write and an fdatasync elsewhere), never on
 * the event loop; up to three writes are out at once, acknowledged in position order, and appends that
 * arrive while they are share the next one (group fsync; inbox-writer.ts). What is applied to the store is
 * recorded there (its position); after a crash everything past that position is applied again, so nothing
 * answered 200 is lost.
 *
 * Files: `<dir>/<segment, 12 digits>.log`. Each start-up writes a new segment; a segment reaching
 * `segmentBytes` is followed by the next, and so is one rolled (an erasure, or its records' age). A segment
 * is deleted once the store holds a durable position past it (or every record in it is applied, durably,
 * when it is dropped). A record is `[u32 length][u32 crc32][u32 segment][u32 meta length][meta JSON][body]`,
 * little-endian, the crc over what follows it: a record cut short by a crash (never acknowledged, its fsync
 * did not return) fails it and ends the segment, and so does a record naming another segment.
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
  /** Resolves with the record's end position once it is on disk (its synced write returned), else rejects. */
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
  /** Synced writes out at once (default 3; inbox-writer.ts). */
  readonly maxWrites?: number;
  /** How a group of records is written (tests slow or fail writes through it; default FileHandle.writev). */
  readonly write?: GroupWrite;
}

const HEADER_BYTES = 16;
const SEGMENT_NAME = /^(\d{12})\.log$/;

export const segmentPath = (dir: string, segment: number): string =>
  join(dir, `${String(segment).padStart(12, "0")}.log`);

/**
 * Opens the inbox in `dir`: deletes segments with nothing past `applied` (the store holds them durably, or
 * a start took no delivery), reads every record past `applied` (cutting a torn tail off), and starts a new
 * segment for appends.
 */
export async function openInbox(
  dir: string,
  applied: InboxPosition | undefined,
  opts: InboxOptions = {},
): Promise<{ inbox: InboxFile; unapplied: StoredRecord[] }> {
  mkdirSync(dir, { recursive: true });
  const segments = readUnapplied(dir, applied);
  const kept: number[] = [];
  for (const { segment, records } of segments) {
    if (records.length === 0) await unlink(segmentPath(dir, segment));
    else kept.push(segment);
  }
  const first = Math.max(applied?.segment ?? 0, ...segments.map((s) => s.segment)) + 1;
  const inbox = await startWriter(
    dir,
    { first, older: kept },
    { ...opts, segmentBytes: opts.segmentBytes ?? 8 * 1024 * 1024 },
  );
  return { inbox, unapplied: segments.flatMap((s) => s.records) };
}

/**
 * Every segment in `dir`, oldest first, with the records it holds past `applied` (none for a segment behind
 * it). Only reads: the crash suite uses it on what a killed process left.
 */
export function readUnapplied(
  dir: string,
  applied: InboxPosition | undefined,
): Array<{ segment: number; records: StoredRecord[] }> {
  return readdirSync(dir)
    .map((name) => SEGMENT_NAME.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
    .map((segment) => {
      if (applied !== undefined && segment < applied.segment) return { segment, records: [] };
      const from = applied !== undefined && segment === applied.segment ? applied.offset : 0;
      return { segment, records: readSegment(segment, readFileSync(segmentPath(dir, segment)), from) };
    });
}

/**
 * The records of one segment from `from` on. Stops at the first record that is cut short, corrupt or
 * naming another segment (a file copied or renamed into this name).
 */
export function readSegment(segment: number, data: Buffer, from: number): StoredRecord[] {
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
        body: Buffer.from(data.subarray(metaEnd, end)),
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

/** The record's bytes: a header buffer (length, crc, segment, meta) and the body itself (not copied). */
export function encodeRecord(record: InboxRecord, segment: number): [Buffer, Buffer] {
  const meta: Meta = {
    w: record.webhookId ?? null,
    t: record.topic,
    s: record.shopDomain,
    r: record.receivedAtMs,
    h: record.headers,
  };
  const metaText = JSON.stringify(meta);
  const metaLength = Buffer.byteLength(metaText);
  const head = Buffer.allocUnsafe(HEADER_BYTES + metaLength);
  head.writeUInt32LE(8 + metaLength + record.body.length, 0);
  head.writeUInt32LE(segment, 8);
  head.writeUInt32LE(metaLength, 12);
  head.write(metaText, HEADER_BYTES, "utf8");
  head.writeUInt32LE(crc32(record.body, crc32(head.subarray(8))), 4);
  return [head, record.body];
}
