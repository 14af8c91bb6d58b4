import { constants } from "node:fs";
import { open, unlink, type FileHandle } from "node:fs/promises";
import { StoreError } from "../errors.ts";
import { encodeRecord, segmentPath, type InboxFile, type InboxPosition } from "./inbox-file.ts";

/** The inbox's writer (store/inbox-file.ts has the format and opening): appends, segments, deletion. */

/** O_DSYNC where it is an fdatasync's equal (Linux); elsewhere 0, and each append is fdatasync'ed. */
const APPEND_FLAGS: number = process.platform === "linux" ? constants.O_DSYNC : 0;

interface Queued {
  readonly segment: number;
  readonly parts: readonly [Buffer, Buffer];
  readonly end: InboxPosition;
  readonly resolve: (end: InboxPosition) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * The writer: one segment open for appends, one synchronized write out at a time, the records appended
 * meanwhile waiting for the next. On Linux segments are opened for appends with O_DSYNC: each write returns
 * once its data is on the disk as an fdatasync would leave it, in one trip through the thread pool (libuv
 * splits a group of more than 1,024 buffers into several writes, each synced), and nothing of it runs on
 * the event loop (a write into the page cache there takes microseconds most of the time, but can wait
 * milliseconds while the filesystem commits the store's writes — and every answer waits with it).
 * Elsewhere each write is followed by an fdatasync (on macOS libuv makes that an F_FULLFSYNC, which its
 * O_DSYNC is not).
 *
 * Positions are assigned at append time, in append order; a record that would start past `segmentBytes`
 * starts the next segment instead, and so does every record after a failed write (what that write left is
 * never acknowledged: at worst it is applied once more, as a duplicate).
 *
 * Segments exist at their full size before they are used — written full of zeros while the one before
 * fills (from half full on): an fdatasync then flushes only the records' own blocks, with no file size or
 * block allocation to commit through ext4's journal behind the database's writes. Applied segments are
 * deleted, never reused: they hold raw bodies, personal data among them.
 */
export async function startWriter(
  dir: string,
  files: { first: number; older: readonly number[] },
  segmentBytes: number,
): Promise<InboxFile> {
  const onDisk = [...files.older, files.first];
  let file: FileHandle = await createSegment(dir, files.first, segmentBytes);
  let prepared: { segment: number; file: Promise<FileHandle> } | undefined;
  /** The open segment and how much of it is written and synced. */
  let fileSegment = files.first;
  let synced = 0;
  /** Where the next record goes. */
  let segment = files.first;
  let assigned = 0;
  let queue: Queued[] = [];
  let writing: Promise<void> | undefined;
  /** The open segment was dropped (closed and deleted) before anything was appended after it. */
  let fileClosed = false;

  function prepare(next: number): void {
    if (prepared !== undefined) return;
    const ready = createSegment(dir, next, segmentBytes);
    ready.catch(() => undefined); // met again when the segment is needed
    prepared = { segment: next, file: ready };
  }

  async function switchTo(target: number): Promise<void> {
    const ready = prepared?.segment === target ? prepared.file : undefined;
    if (prepared !== undefined && ready === undefined) await discardPrepared();
    prepared = undefined;
    const next = await (ready ?? createSegment(dir, target, segmentBytes));
    if (!fileClosed) await file.close().catch(() => undefined);
    file = next;
    fileClosed = false;
    fileSegment = target;
    onDisk.push(target);
    synced = 0;
  }

  async function discardPrepared(): Promise<void> {
    const unused = prepared;
    prepared = undefined;
    if (unused === undefined) return;
    await (await unused.file.catch(() => undefined))?.close();
    await unlink(segmentPath(dir, unused.segment)).catch(() => undefined);
  }

  /** Deletes every segment before `first` (all applied, durably); the open one too, if it is among them. */
  async function dropBefore(first: number): Promise<void> {
    if (fileSegment < first && !fileClosed) {
      fileClosed = true;
      await file.close().catch(() => undefined);
    }
    while (onDisk.length > 0 && (onDisk[0] as number) < first) {
      await unlink(segmentPath(dir, onDisk.shift() as number)).catch(() => undefined);
    }
  }

  async function writeGroup(group: readonly Queued[]): Promise<void> {
    const target = group[0]?.segment ?? fileSegment;
    if (target !== fileSegment) await switchTo(target);
    const buffers = group.flatMap((q) => q.parts);
    const size = buffers.reduce((n, b) => n + b.length, 0);
    // Written and synced in one trip through the thread pool (O_DSYNC), or followed by an fdatasync.
    const { bytesWritten } = await file.writev(buffers, synced);
    if (bytesWritten !== size) throw new Error(`short write (${bytesWritten} of ${size} bytes)`);
    if (APPEND_FLAGS === 0) await file.datasync();
    synced += size;
    if (synced * 2 >= segmentBytes) prepare(fileSegment + 1);
  }

  /** Starts the writer unless it runs. */
  function kick(): void {
    writing ??= writeOut();
  }

  /**
   * Writes until the queue is empty, and says so (`writing` cleared) in the same turn it finds it empty:
   * a record appended by a waiter it just answered starts the writer again instead of waiting unseen.
   */
  async function writeOut(): Promise<void> {
    for (;;) {
      if (queue.length === 0) {
        writing = undefined;
        return;
      }
      const taken = queue;
      queue = [];
      // One write per segment the taken records fall in (two when a segment just filled up).
      const first = taken[0] as Queued;
      const split = taken.findIndex((q) => q.segment !== first.segment);
      const group = split < 0 ? taken : taken.slice(0, split);
      if (split >= 0) queue = [...taken.slice(split), ...queue];
      try {
        await writeGroup(group);
      } catch (cause) {
        // Nothing of this group is acknowledged, nor what queued behind it (its positions followed); the
        // next record starts a new segment.
        const error = new StoreError("could not write the inbox", { retryable: true, cause });
        for (const q of [...group, ...queue]) q.reject(error);
        queue = [];
        segment = Math.max(segment, fileSegment) + 1;
        assigned = 0;
        continue;
      }
      for (const q of group) q.resolve(q.end);
    }
  }

  return {
    append(record) {
      const head = encodeRecord(record, segment);
      let size = head[0].length + head[1].length;
      let parts = head;
      if (assigned > 0 && assigned + size > segmentBytes) {
        segment += 1;
        assigned = 0;
        parts = encodeRecord(record, segment);
        size = parts[0].length + parts[1].length;
      }
      assigned += size;
      const end = { segment, offset: assigned };
      const at = segment;
      const done = new Promise<InboxPosition>((resolve, reject) => {
        queue.push({ segment: at, parts, end, resolve, reject });
      });
      kick();
      return done;
    },
    async release(applied) {
      await dropBefore(applied.segment);
    },
    roll() {
      if (assigned > 0) {
        segment += 1;
        assigned = 0;
      }
      return segment;
    },
    dropBefore,
    oldestSegment: () => onDisk[0] ?? fileSegment,
    async close() {
      while (writing !== undefined) await writing;
      if (!fileClosed) await file.close();
      // A segment made ready and never used holds no record.
      await discardPrepared();
    },
  };
}

/**
 * The zeros a segment is made of, written this many bytes at a time. The page cache keeps a file's pages in
 * folios as large as the writes that made them (Linux 6.x, ext4), and writeback writes a dirty folio whole:
 * a segment zeroed 1 MiB at a time made each record's fdatasync write 1 MiB to the disk (measured here: 1,028
 * kB per 5 kB record, against 21 kB with 16 KiB writes and 9 kB with 4 KiB), competing with the store's writes
 * for the disk every answer waits on. 16 KiB keeps that small at 512 writes per 8 MiB segment, made through
 * the thread pool while the segment before fills.
 */
const ZERO_WRITE_BYTES = 16 * 1024;
const ZEROS = Buffer.alloc(ZERO_WRITE_BYTES);

/**
 * Creates segment `segment` written full of zeros (synced once, at the end), makes its directory entry
 * durable, and opens it again for appends (with O_DSYNC on Linux, see startWriter).
 */
async function createSegment(dir: string, segment: number, bytes: number): Promise<FileHandle> {
  const path = segmentPath(dir, segment);
  const file = await open(path, "wx");
  try {
    for (let at = 0; at < bytes; at += ZEROS.length) {
      await file.write(ZEROS, 0, Math.min(ZEROS.length, bytes - at), at);
    }
    await file.datasync();
    await syncDirectory(dir);
    return await open(path, constants.O_RDWR | APPEND_FLAGS);
  } catch (error) {
    await unlink(path).catch(() => undefined);
    throw error;
  } finally {
    await file.close().catch(() => undefined);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
