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

/** A group of records whose write is out (or came back), in position order among the others. */
interface Launched {
  readonly group: readonly Queued[];
  /** Its write came back: undefined while out, else whether it failed (and why). */
  outcome: { readonly error: unknown } | "written" | undefined;
  /** A write before it failed: its records were refused whatever its own write does. */
  refused: boolean;
}

/** How the writer writes a group at a position (the tests' seam; by default FileHandle.writev). */
export type GroupWrite = (file: FileHandle, buffers: Buffer[], position: number) => Promise<number>;

export interface WriterOptions {
  readonly segmentBytes: number;
  /** Synced writes out at once (default 3 of libuv's 4 threads: one stays for everything else). */
  readonly maxWrites?: number;
  readonly write?: GroupWrite;
}

const writev: GroupWrite = async (file, buffers, position) =>
  (await file.writev(buffers, position)).bytesWritten;

/**
 * The writer: one segment open for appends, up to `maxWrites` synchronized writes out at once, the records
 * appended meanwhile waiting for the next free one. On Linux segments are opened for appends with O_DSYNC: each
 * write returns once its data is on the disk as an fdatasync would leave it, in one trip through the thread
 * pool (libuv splits a group of more than 1,024 buffers into several writes, each synced), and nothing of it
 * runs on the event loop (a write into the page cache there takes microseconds most of the time, but can
 * wait milliseconds while the filesystem commits the store's writes — and every answer waits with it).
 * Elsewhere each write is followed by an fdatasync (on macOS libuv makes that an F_FULLFSYNC, which its
 * O_DSYNC is not).
 *
 * Writes overlap: a record appended while one write waits for the disk goes out at once in a write of its
 * own, at its own position, instead of queueing behind it (a slow write — the disk busy with the store's
 * writes — otherwise made every answer behind it wait for it and then for its own; bench/results.md, tenth
 * session). They are acknowledged in position order only: a record's append resolves once its own write and
 * every write before it in the segment came back. So whatever is acknowledged has every record before it
 * on the disk, and after a crash the reader, which stops at the first record that is not whole, loses only
 * records never acknowledged. A failed write refuses its records and those of every write after it (out or
 * waiting), and the next record starts the next segment. Each write out goes through a descriptor of the
 * segment of its own: Linux reports a failed writeback once per descriptor, to whichever sync looks first,
 * so through a shared one a write could be told of another's failure and that one acknowledged.
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
  opts: WriterOptions,
): Promise<InboxFile> {
  const { segmentBytes } = opts;
  const maxWrites = Math.max(1, opts.maxWrites ?? 3);
  const write = opts.write ?? writev;
  const onDisk = [...files.older, files.first];
  /**
   * The open segment's descriptors, one per write that may be out (see "Writes overlap" above), and those
   * no write holds.
   */
  let handles: FileHandle[] = await createSegment(dir, files.first, segmentBytes, maxWrites);
  let free: FileHandle[] = [...handles];
  let prepared: { segment: number; file: Promise<FileHandle[]> } | undefined;
  /** The open segment, and how far into it every record is written and synced. */
  let fileSegment = files.first;
  let synced = 0;
  /** Where the next record goes. */
  let segment = files.first;
  let assigned = 0;
  /** Appended, not yet in a write. */
  let queue: Queued[] = [];
  /** Writes out or not yet acknowledged, in position order. */
  const launched: Launched[] = [];
  /** Moving to the next segment (every write into the one before came back first). */
  let switching = false;
  /** The open segment was dropped (closed and deleted) before anything was appended after it. */
  let fileClosed = false;
  /** Waiting for the writer to have nothing queued or out (close). */
  let idleWaiters: (() => void)[] = [];

  function prepare(next: number): void {
    if (prepared !== undefined) return;
    const ready = createSegment(dir, next, segmentBytes, maxWrites);
    ready.catch(() => undefined); // met again when the segment is needed
    prepared = { segment: next, file: ready };
  }

  async function switchTo(target: number): Promise<void> {
    const ready = prepared?.segment === target ? prepared.file : undefined;
    if (prepared !== undefined && ready === undefined) await discardPrepared();
    prepared = undefined;
    const next = await (ready ?? createSegment(dir, target, segmentBytes, maxWrites));
    if (!fileClosed) await closeAll(handles).catch(() => undefined);
    handles = next;
    free = [...next];
    fileClosed = false;
    fileSegment = target;
    onDisk.push(target);
    synced = 0;
  }

  async function discardPrepared(): Promise<void> {
    const unused = prepared;
    prepared = undefined;
    if (unused === undefined) return;
    await closeAll((await unused.file.catch(() => undefined)) ?? []).catch(() => undefined);
    await unlink(segmentPath(dir, unused.segment)).catch(() => undefined);
  }

  /** Deletes every segment before `first` (all applied, durably); the open one too, if it is among them. */
  async function dropBefore(first: number): Promise<void> {
    if (fileSegment < first && !fileClosed) {
      fileClosed = true;
      await closeAll(handles).catch(() => undefined);
    }
    while (onDisk.length > 0 && (onDisk[0] as number) < first) {
      await unlink(segmentPath(dir, onDisk.shift() as number)).catch(() => undefined);
    }
  }

  /** Writes `group` (records of the open segment, back to back) at its place: written and synced. */
  async function writeGroup(group: readonly Queued[]): Promise<void> {
    const buffers = group.flatMap((q) => q.parts);
    const size = buffers.reduce((n, b) => n + b.length, 0);
    const position = (group.at(-1) as Queued).end.offset - size;
    // A descriptor of its own: the kernel reports a failed writeback once per descriptor, to the first sync
    // that looks, so two writes out through one could see one's failure reported to the other and the
    // failed one acknowledged. Each of these descriptors sees every failure after it was opened.
    const target = free.pop();
    if (target === undefined) throw new Error("no descriptor free for a write (more writes out than slots)");
    try {
      // Written and synced in one trip through the thread pool (O_DSYNC), or followed by an fdatasync.
      const bytesWritten = await write(target, buffers, position);
      if (bytesWritten !== size) throw new Error(`short write (${bytesWritten} of ${size} bytes)`);
      if (APPEND_FLAGS === 0) await target.datasync();
    } finally {
      if (handles.includes(target)) free.push(target);
    }
  }

  /** Nothing queued, out, or switching: tells close(). */
  function checkIdle(): void {
    if (queue.length > 0 || launched.length > 0 || switching) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Starts writes while fewer than `maxWrites` are out: each takes what waits for the open segment. Records
   * of the next segment wait until every write into this one came back, then the writer moves on.
   */
  function pump(): void {
    while (queue.length > 0 && launched.length < maxWrites && !switching) {
      const first = queue[0] as Queued;
      if (first.segment !== fileSegment) {
        if (launched.length > 0) return; // settle() pumps again once they are back
        switching = true;
        switchTo(first.segment).then(
          () => {
            switching = false;
            pump();
          },
          (cause: unknown) => {
            switching = false;
            fail(new StoreError("could not start the next inbox segment", { retryable: true, cause }));
            pump();
          },
        );
        return;
      }
      const split = queue.findIndex((q) => q.segment !== first.segment);
      const group = split < 0 ? queue : queue.slice(0, split);
      queue = split < 0 ? [] : queue.slice(split);
      const out: Launched = { group, outcome: undefined, refused: false };
      launched.push(out);
      writeGroup(group).then(
        () => settle(out, "written"),
        (error: unknown) => settle(out, { error }),
      );
    }
    checkIdle();
  }

  /** A write came back: acknowledges, in position order, every write at the front that is back. */
  function settle(out: Launched, outcome: Launched["outcome"]): void {
    out.outcome = outcome;
    while (launched.length > 0 && (launched[0] as Launched).outcome !== undefined) {
      const done = launched.shift() as Launched;
      if (done.refused) continue;
      if (done.outcome === "written") {
        const end = (done.group.at(-1) as Queued).end;
        synced = Math.max(synced, end.offset);
        for (const q of done.group) q.resolve(q.end);
        continue;
      }
      // Nothing of this group is acknowledged, nor of any write after it (out or waiting): their positions
      // followed. The next record starts a new segment.
      const cause = (done.outcome as { error: unknown }).error;
      for (const q of done.group)
        q.reject(new StoreError("could not write the inbox", { retryable: true, cause }));
      fail(new StoreError("could not write the inbox", { retryable: true, cause }));
    }
    if (synced * 2 >= segmentBytes) prepare(fileSegment + 1);
    pump();
  }

  /** Refuses every write out (whatever they do) and every record waiting; the next record starts a new segment. */
  function fail(error: StoreError): void {
    for (const later of launched) {
      if (later.refused) continue;
      later.refused = true;
      for (const q of later.group) q.reject(error);
    }
    for (const q of queue) q.reject(error);
    queue = [];
    segment = Math.max(segment, fileSegment) + 1;
    assigned = 0;
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
      pump();
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
      if (queue.length > 0 || launched.length > 0 || switching) {
        await new Promise<void>((resolve) => idleWaiters.push(resolve));
      }
      if (!fileClosed) await closeAll(handles);
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
 * durable, and opens it again for appends `count` times (with O_DSYNC on Linux, see startWriter).
 */
async function createSegment(
  dir: string,
  segment: number,
  bytes: number,
  count: number,
): Promise<FileHandle[]> {
  const path = segmentPath(dir, segment);
  const file = await open(path, "wx");
  const opened: FileHandle[] = [];
  try {
    for (let at = 0; at < bytes; at += ZEROS.length) {
      await file.write(ZEROS, 0, Math.min(ZEROS.length, bytes - at), at);
    }
    await file.datasync();
    await syncDirectory(dir);
    for (let i = 0; i < count; i++) opened.push(await open(path, constants.O_RDWR | APPEND_FLAGS));
    return opened;
  } catch (error) {
    await closeAll(opened).catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw error;
  } finally {
    await file.close().catch(() => undefined);
  }
}

/**
 * Closes every descriptor (FileHandle.close waits for the operations out on it), then rejects with the first
 * failure, if any.
 */
async function closeAll(handles: readonly FileHandle[]): Promise<void> {
  const closed = await Promise.allSettled(handles.map((h) => h.close()));
  const failed = closed.find((c): c is PromiseRejectedResult => c.status === "rejected");
  if (failed !== undefined) throw failed.reason;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
