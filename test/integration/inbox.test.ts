import assert from "node:assert/strict";
import {
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { StoreError } from "../../src/errors.ts";
import {
  openInbox,
  readSegment,
  type InboxFile,
  type InboxPosition,
  type InboxRecord,
  type StoredRecord,
} from "../../src/store/inbox-file.ts";
import type { GroupWrite } from "../../src/store/inbox-writer.ts";
import { createCheckpointGate } from "../../src/store/sqlite-gate.ts";
import { openSqliteStore } from "../../src/store/sqlite.ts";
import type { InboxLedger, IngestOutcome, Store } from "../../src/store/store.ts";
import { startInboxIntake } from "../../src/sync/inbox-intake.ts";
import { createDeliveryMapper } from "../../src/sync/intake.ts";
import { cartBody } from "../helpers/shopify.ts";
import { waitFor } from "../helpers/wait.ts";

/**
 * The inbox of raw deliveries (store/inbox-file.ts) and the intake that applies it (sync/inbox-intake.ts):
 * what a 200 on the embedded store rests on. Real files, a real SQLite store.
 */

const SHOP = "inbox-shop.myshopify.com";

function record(token: string, webhookId: string, price = "10.00"): InboxRecord {
  return {
    webhookId,
    topic: "carts/update",
    shopDomain: SHOP,
    receivedAtMs: Date.UTC(2030, 0, 1),
    headers: { "x-shopify-topic": "carts/update", "x-shopify-webhook-id": webhookId },
    body: Buffer.from(cartBody(token, { price })),
  };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-inbox-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What `dir`'s inbox holds past `applied`, as opening it reads it (then closed again). */
async function reread(
  dir: string,
  applied?: InboxPosition,
  opts?: { segmentBytes: number },
): Promise<StoredRecord[]> {
  const { inbox, unapplied } = await openInbox(dir, applied, opts);
  await inbox.close();
  return unapplied;
}

const segmentFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((n) => /^\d{12}\.log$/.test(n))
    .sort();

describe("inbox file", () => {
  it("reads back what was appended, in order, with each record's end position", async (t) => {
    const dir = tempDir(t);
    const { inbox, unapplied } = await openInbox(dir, undefined);
    assert.deepEqual(unapplied, []);
    const sent = [record("a", "w1"), record("b", "w2"), { ...record("c", "w3"), webhookId: undefined }];
    const ends = await Promise.all(sent.map((r) => inbox.append(r)));
    await inbox.close();

    const reopened = await reread(dir);
    assert.deepEqual(
      reopened.map((s) => s.record),
      sent,
    );
    assert.deepEqual(
      reopened.map((s) => s.end),
      ends,
    );
    assert.ok(ends[0]!.offset < ends[1]!.offset && ends[1]!.offset < ends[2]!.offset);

    // Past an applied position, only what follows it.
    assert.deepEqual(
      (await reread(dir, ends[1])).map((s) => s.record.webhookId),
      [undefined],
    );
  });

  it("writes an append made by the waiter of the one before (one after the other, never left unwritten)", async (t) => {
    const dir = tempDir(t);
    const { inbox } = await openInbox(dir, undefined);
    // The second append runs in the very turn the first one's waiter is answered.
    const both = inbox
      .append(record("s0", "seq-0"))
      .then((first) => inbox.append(record("s1", "seq-1")).then((second) => [first, second]));
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error("the second append never resolved")), 5000).unref(),
    );
    const ends = await Promise.race([both, timeout]);
    await inbox.close();
    assert.deepEqual(
      (await reread(dir)).map((s) => s.end),
      ends,
    );
  });

  // The kernel charges a process for the pages it dirties, a whole page-cache folio at a time: what each
  // record's write dirties is what its fdatasync writes to the disk. Segments zeroed in large writes sit in
  // large folios (Linux 6.x), and each record then cost the disk 1 MiB; /proc/self/io exists on Linux only.
  const writeBytes = (): number | undefined => {
    try {
      const found = /write_bytes: (\d+)/.exec(readFileSync("/proc/self/io", "utf8"))?.[1];
      return found === undefined ? undefined : Number(found);
    } catch {
      return undefined;
    }
  };
  it(
    "writes each record's own blocks to the disk, not the large folios a segment was zeroed in",
    {
      skip: writeBytes() === undefined ? "no /proc/self/io here" : false,
    },
    async (t) => {
      const dir = tempDir(t);
      const { inbox } = await openInbox(dir, undefined);
      const before = writeBytes() as number;
      const records = 50;
      for (let i = 0; i < records; i++) await inbox.append(record(`f${i}`, `folio-${i}`));
      const perRecord = ((writeBytes() as number) - before) / records;
      await inbox.close();
      const recordBytes = record("f0", "folio-0").body.length;
      assert.ok(
        perRecord < 64 * 1024,
        `each ${recordBytes}-byte record dirtied ${Math.round(perRecord / 1024)} kB of the page cache`,
      );
    },
  );

  // A descriptor's open flags, from Linux's /proc/self/fdinfo (octal).
  const openFlagsOf = (path: string): number[] | undefined => {
    if (!existsSync("/proc/self/fdinfo")) return undefined;
    const flags: number[] = [];
    for (const fd of readdirSync("/proc/self/fd")) {
      let target: string;
      try {
        target = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue; // closed meanwhile (readdir's own descriptor, say)
      }
      if (target !== path) continue;
      const found = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
      if (found !== undefined) flags.push(Number.parseInt(found, 8));
    }
    return flags;
  };
  it(
    "appends through a descriptor opened with O_DSYNC on Linux, so each append is synced by its own write",
    { skip: process.platform !== "linux" ? "O_DSYNC is used on Linux only" : false },
    async (t) => {
      const dir = tempDir(t);
      const { inbox } = await openInbox(dir, undefined);
      t.after(() => inbox.close());
      await inbox.append(record("d0", "dsync-0"));
      const [file] = segmentFiles(dir);
      // The descriptor's link names the real path (the temp directory may be reached through a symlink).
      const flags = openFlagsOf(realpathSync(join(dir, file!))) ?? [];
      assert.equal(
        flags.length,
        3,
        "the writer holds a descriptor of its segment for each write that may be out",
      );
      for (const f of flags) {
        assert.ok(
          (f & constants.O_DSYNC) !== 0,
          `the segment is open without O_DSYNC (flags ${f.toString(8)})`,
        );
      }
    },
  );

  it("stops at a record cut short or corrupted (a crash during its write: it was never acknowledged)", async (t) => {
    const dir = tempDir(t);
    const { inbox } = await openInbox(dir, undefined);
    const ends = await Promise.all(["w1", "w2", "w3"].map((id, i) => inbox.append(record(`t${i}`, id))));
    await inbox.close();
    const [file] = segmentFiles(dir);
    const path = join(dir, file!);

    // The third record cut in the middle of its body.
    truncateSync(path, ends[2]!.offset - 10);
    assert.deepEqual(
      (await reread(dir)).map((s) => s.record.webhookId),
      ["w1", "w2"],
    );

    // One byte of the second record's body changed.
    const bytes = readFileSync(path);
    const at = ends[1]!.offset - 5;
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
    assert.deepEqual(
      (await reread(dir)).map((s) => s.record.webhookId),
      ["w1"],
    );
  });

  it("rolls over to new segments; applied ones are deleted, and a rolled segment's records can be dropped", async (t) => {
    const dir = tempDir(t);
    const size = await openInbox(tempDir(t), undefined).then(async ({ inbox }) => {
      const end = await inbox.append(record("c0", "old-0"));
      await inbox.close();
      return end.offset;
    });
    // Three records per segment (every record here has the same size).
    const opts = { segmentBytes: Math.floor(size * 3.5) };
    const { inbox } = await openInbox(dir, undefined, opts);
    const first = await Promise.all(
      Array.from({ length: 9 }, (_, i) => inbox.append(record(`c${i}`, `old-${i}`))),
    );
    assert.equal(new Set(first.map((e) => e.segment)).size, 3, "nine records fill three segments");

    // Everything so far applied: the segments before the last one are deleted.
    await inbox.release(first.at(-1)!);
    assert.deepEqual(segmentFiles(dir).length, 2, "the last one and the next, made ready in advance");
    // Rolled and dropped (an erasure): the last one goes too, though nothing came after it.
    const next = inbox.roll();
    await inbox.dropBefore(next);
    const bodies = () => segmentFiles(dir).map((n) => readFileSync(join(dir, n)).toString("latin1"));
    assert.ok(
      bodies().every((b) => !b.includes("old-")),
      "no applied record is left in any file",
    );
    const second = await Promise.all(
      Array.from({ length: 4 }, (_, i) => inbox.append(record(`n${i}`, `new-${i}`))),
    );
    assert.ok(second.every((e) => e.segment >= next));
    await inbox.close();

    assert.deepEqual(
      (await reread(dir, first.at(-1), opts)).map((s) => s.record.webhookId),
      second.map((_, i) => `new-${i}`),
    );
  });
});

/**
 * A write seam that holds every write until the test lets it go (really written then) or fails it, in
 * whatever order the test chooses.
 */
function heldWrites(): { write: GroupWrite; out: HeldWrite[] } {
  const out: HeldWrite[] = [];
  const write: GroupWrite = (file, buffers, position) =>
    new Promise<number>((resolve, reject) => {
      const held: HeldWrite = {
        position,
        fd: file.fd,
        written: false,
        settled: false,
        let: () =>
          void file.writev(buffers, position).then(
            (r) => {
              held.written = true;
              held.settled = true;
              resolve(r.bytesWritten);
            },
            (error: Error) => {
              held.settled = true;
              reject(error);
            },
          ),
        fail: () => {
          held.settled = true;
          reject(new Error("EIO (a test's failed write)"));
        },
      };
      out.push(held);
    });
  return { write, out };
}

interface HeldWrite {
  readonly position: number;
  /** The descriptor it was given. */
  readonly fd: number;
  /** Its real write returned (it is on the disk). */
  written: boolean;
  /** It came back, either way. */
  settled: boolean;
  let(): void;
  fail(): void;
}

/** Whether `promise` has settled, and how, as of now (after the microtasks queued so far). */
function watch<T>(promise: Promise<T>): {
  state: () => "pending" | "resolved" | "rejected";
  done: Promise<T>;
} {
  let state: "pending" | "resolved" | "rejected" = "pending";
  promise.then(
    () => (state = "resolved"),
    () => (state = "rejected"),
  );
  return { state: () => state, done: promise };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Appends `r` and waits until a write of it is out (held); returns its watch. */
async function appendedOut(
  inbox: InboxFile,
  held: { out: readonly HeldWrite[] },
  r: InboxRecord,
): Promise<ReturnType<typeof watch<InboxPosition>>> {
  const before = held.out.length;
  const w = watch(inbox.append(r));
  await waitFor(() => held.out.length > before, { what: `a write of ${r.webhookId} out` });
  return w;
}

/** A fresh inbox whose writes are held until the test lets each through (or fails it). */
async function heldInbox(
  t: TestContext,
  opts: { segmentBytes?: number } = {},
): Promise<{ dir: string; held: ReturnType<typeof heldWrites>; inbox: InboxFile }> {
  const dir = tempDir(t);
  const held = heldWrites();
  const { inbox } = await openInbox(dir, undefined, { ...opts, write: held.write });
  return { dir, held, inbox };
}

describe("inbox file, writes out at once", () => {
  it("writes a record appended while a write is out in a write of its own, up to three out at once", async (t) => {
    const { dir, held, inbox } = await heldInbox(t);
    const a = inbox.append(record("p0", "pipe-0"));
    await waitFor(() => held.out.length === 1);
    const b = inbox.append(record("p1", "pipe-1"));
    await waitFor(() => held.out.length === 2, { what: "a second write while the first is out" });
    const c = inbox.append(record("p2", "pipe-2"));
    const d = inbox.append(record("p3", "pipe-3"));
    await waitFor(() => held.out.length === 3);
    await turn();
    assert.equal(held.out.length, 3, "at most three writes are out; the fourth record waits");
    assert.ok(held.out[0]!.position < held.out[1]!.position && held.out[1]!.position < held.out[2]!.position);
    assert.equal(
      new Set(held.out.map((w) => w.fd)).size,
      3,
      "each write out has a descriptor of its own (a failed writeback is reported once per descriptor)",
    );

    for (const w of held.out.slice(0, 3)) w.let();
    await waitFor(() => held.out.length === 4, { what: "the waiting record's write once one came back" });
    held.out[3]!.let();
    const ends = await Promise.all([a, b, c, d]);
    await inbox.close();
    assert.deepEqual(
      (await reread(dir)).map((s) => [s.record.webhookId, s.end]),
      ends.map((end, i) => [`pipe-${i}`, end]),
    );
  });

  it("acknowledges in position order: a write that came back waits for the ones before it", async (t) => {
    const { held, inbox } = await heldInbox(t);
    const a = await appendedOut(inbox, held, record("o0", "order-0"));
    const b = await appendedOut(inbox, held, record("o1", "order-1"));

    held.out[1]!.let(); // the later write is on the disk first
    await waitFor(() => held.out[1]!.written);
    await turn();
    assert.equal(b.state(), "pending", "acknowledged before the record in front of it was on the disk");
    held.out[0]!.let();
    await waitFor(() => a.state() === "resolved" && b.state() === "resolved");
    await inbox.close();
  });

  it("a failed write refuses its records and every write after it, even one that came back; the next record starts a new segment", async (t) => {
    const { dir, held, inbox } = await heldInbox(t);
    const a = await appendedOut(inbox, held, record("f0", "fail-0"));
    const b = await appendedOut(inbox, held, record("f1", "fail-1"));
    held.out[1]!.let();
    await waitFor(() => held.out[1]!.written);
    await turn();
    held.out[0]!.fail();
    await waitFor(() => a.state() !== "pending" && b.state() !== "pending");
    assert.deepEqual([a.state(), b.state()], ["rejected", "rejected"]);

    const c = inbox.append(record("f2", "fail-2"));
    await waitFor(() => held.out.length === 3);
    held.out[2]!.let();
    const end = await c;
    await inbox.close();
    assert.deepEqual(
      (await reread(dir)).map((s) => [s.record.webhookId, s.end.segment]),
      [["fail-2", end.segment]],
      "the refused records are not read back, the next one is, in a segment of its own",
    );
    assert.ok(
      !existsBytes(dir, "fail-1"),
      "the segment with the failed write is gone (nothing in it applies)",
    );
  });
});

describe("inbox file, writes out at once: failures, segments and crashes", () => {
  it("a later write failing before an earlier one comes back refuses only itself and what follows", async (t) => {
    const { dir, held, inbox } = await heldInbox(t);
    const a = await appendedOut(inbox, held, record("l0", "late-0"));
    const b = await appendedOut(inbox, held, record("l1", "late-1"));
    held.out[1]!.fail();
    await turn();
    assert.equal(b.state(), "pending", "refused only in position order, after the write before it");
    const c = await appendedOut(inbox, held, record("l2", "late-2"));
    held.out[0]!.let();
    await waitFor(() => [a, b, c].every((w) => w.state() !== "pending"));
    assert.deepEqual([a.state(), b.state(), c.state()], ["resolved", "rejected", "rejected"]);
    // The next record starts a new segment, once the refused write still out came back.
    const d = inbox.append(record("l3", "late-3"));
    await turn();
    assert.equal(held.out.length, 3, "no write into the next segment while one into this one is out");
    held.out[2]!.let();
    await waitFor(() => held.out.length === 4);
    held.out[3]!.let();
    const dEnd = await d;
    await inbox.close();
    assert.deepEqual(
      (await reread(dir)).map((r) => r.record.webhookId),
      ["late-0", "late-3"],
    );
    assert.ok(dEnd.segment > (await a.done).segment);
  });

  it("moves to the next segment only once every write into the one before came back", async (t) => {
    const size = await recordSize(t);
    const opts = { segmentBytes: Math.floor(size * 2.5) }; // two records per segment
    const { dir, held, inbox } = await heldInbox(t, opts);
    const all = [0, 1, 2].map((i) => watch(inbox.append(record(`m${i}`, `move-${i}`))));
    await waitFor(() => held.out.length === 2);
    await turn();
    assert.equal(held.out.length, 2, "the next segment's record waits while this one's writes are out");
    held.out[1]!.let();
    await waitFor(() => held.out[1]!.written);
    await turn();
    assert.equal(held.out.length, 2, "and waits for every one of them, not only the last");
    held.out[0]!.let();
    await waitFor(() => held.out.length === 3, { what: "the write into the next segment" });
    assert.equal(held.out[2]!.position, 0, "at the start of the next segment");
    held.out[2]!.let();
    await waitFor(() => all.every((w) => w.state() === "resolved"), { what: "all three acknowledged" });
    await inbox.close();
    assert.deepEqual(
      (await reread(dir, undefined, opts)).map((r) => [r.record.webhookId, r.end.segment]),
      [
        ["move-0", 1],
        ["move-1", 1],
        ["move-2", 2],
      ],
    );
  });

  it("whatever the order writes come back or fail in, every acknowledged record is on the disk at every instant", async (t) => {
    // A crash image at any instant is what the writes that came back put on the disk (held writes have not
    // touched it). After each step, every acknowledged record must be readable from it. Seeded, so a
    // failure is reproduced by its round.
    const random = seeded(14);
    const size = await recordSize(t);
    for (let round = 0; round < 20; round++) {
      const { dir, held, inbox } = await heldInbox(t, { segmentBytes: Math.floor(size * 3.5) });
      const acknowledged: string[] = [];
      const settled: Promise<unknown>[] = [];
      let n = 0;
      for (let step = 0; step < 40; step++) {
        const r = random();
        if (r < 0.4) {
          const id = `crash-${round}-${n++}`;
          settled.push(
            inbox.append(record(id, id)).then(
              () => acknowledged.push(id),
              () => undefined,
            ),
          );
        } else if (r < 0.45) {
          inbox.roll();
        } else {
          const out = held.out.filter((w) => !w.settled);
          const w = out[Math.floor(random() * out.length)];
          if (random() < 0.05) w?.fail();
          else w?.let();
        }
        await turn();
        const onDisk = recordsOnDisk(dir);
        for (const id of acknowledged)
          assert.ok(
            onDisk.has(id),
            `round ${round}, step ${step}: ${id} was acknowledged and is not on the disk`,
          );
      }
      // The rest let through (some wait for a segment switch, so until every append is answered).
      let answered = false;
      void Promise.all(settled).then(() => (answered = true));
      await waitFor(() => {
        held.out.forEach((w) => w.settled || w.let());
        return answered;
      });
      await inbox.close();
    }
  });
});

/**
 * The webhook ids of the records a reader finds in `dir`'s segments now. A segment the writer deletes
 * meanwhile (a spare made ready in advance, discarded after a failure) held nothing: it is passed over.
 */
function recordsOnDisk(dir: string): Set<string | undefined> {
  const ids = new Set<string | undefined>();
  for (const name of segmentFiles(dir)) {
    let data: Buffer;
    try {
      data = readFileSync(join(dir, name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    for (const r of readSegment(Number.parseInt(name, 10), data, 0)) ids.add(r.record.webhookId);
  }
  return ids;
}

/** The end offset of one record as `record()` makes them (all the same size). */
async function recordSize(t: TestContext): Promise<number> {
  const { inbox } = await openInbox(tempDir(t), undefined);
  const end = await inbox.append(record("size", "size-0"));
  await inbox.close();
  return end.offset;
}

/** A small seeded PRNG (mulberry32), for runs that can be repeated. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Whether some inbox segment in `dir` holds `text` (a record's webhook id). */
function existsBytes(dir: string, text: string): boolean {
  return segmentFiles(dir).some((n) => readFileSync(join(dir, n)).includes(text));
}

/** The mapper the service uses, warnings ignored. */
const map = createDeliveryMapper({ syncContacts: true, syncLineItems: true, log: { warn() {} } });

/** A served SQLite store in a new directory; closed, then removed, after the test. */
function openStore(t: TestContext, dir?: string): Store & { inbox: InboxLedger } {
  const home = dir ?? mkdtempSync(join(tmpdir(), "cartbridge-inbox-"));
  const store = openSqliteStore(join(home, "cartbridge.db"), { server: true });
  t.after(async () => {
    await store.close();
    if (dir === undefined) rmSync(home, { recursive: true, force: true });
  });
  assert.ok(store.inbox !== undefined, "a served SQLite file acknowledges through an inbox");
  return store as Store & { inbox: InboxLedger };
}

/**
 * A SQLite store whose inbox holds `count` deliveries not yet applied (acknowledged, then the process
 * stopped before applying them), opened again; closed and deleted after the test.
 */
async function storeWithBacklog(t: TestContext, count: number): Promise<Store & { inbox: InboxLedger }> {
  // Not tempDir: the directory goes after the store is closed (after-hooks run in the order they are added).
  const dir = mkdtempSync(join(tmpdir(), "cartbridge-inbox-"));
  const path = join(dir, "cartbridge.db");
  const before = openSqliteStore(path, { server: true });
  const { inbox } = await openInbox(before.inbox!.dir, await before.inbox!.appliedPosition());
  for (let i = 0; i < count; i += 250) {
    const chunk = Array.from({ length: Math.min(250, count - i) }, (_, j) => i + j);
    await Promise.all(chunk.map((n) => inbox.append(record(`backlog-${n}`, `w-backlog-${n}`))));
  }
  await inbox.close();
  await before.close();
  const store = openStore(t, dir);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return store;
}

describe("inbox intake", () => {
  it("applies at start-up what a crash left between the answer and the store, once", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-inbox-"));
    const path = join(dir, "cartbridge.db");
    {
      const store = openSqliteStore(path, { server: true });
      // Acknowledged (durable in the inbox), then the process died before applying it.
      const { inbox } = await openInbox(store.inbox!.dir, await store.inbox!.appliedPosition());
      await inbox.append(record("crashed", "w-crash", "12.00"));
      await inbox.close();
      await store.close();
    }
    const outcomes: IngestOutcome[] = [];
    for (const expected of [1, 0]) {
      const store = openSqliteStore(path, { server: true });
      const intake = await startInboxIntake(store.inbox!, map, (_d, o) => outcomes.push(o));
      assert.equal(intake.replayed, expected);
      await intake.close();
      await store.close();
    }
    assert.deepEqual(outcomes, ["applied"]);
    const store = openStore(t, dir);
    const [claimed] = await store.claimDue({ limit: 10, nowMs: Date.now(), leaseMs: 1000, owner: "t" });
    assert.equal(claimed?.key, `${SHOP}:crashed`);
    t.after(() => rmSync(dir, { recursive: true, force: true }));
  });

  it("applies a backlog in short batches and gives the event loop back between them", async (t) => {
    const store = await storeWithBacklog(t, 100);
    // A macrotask that runs whenever the loop is free: how many times it ran when each batch was applied.
    let turns = 0;
    let ticking = true;
    const tick = (): void => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    // Per batch: the count when the applier called the store, and when the store's answer reached it (the
    // store itself gives the loop a turn per call, so only the applier's own scheduling is measured).
    const batches: Array<{ size: number; turns: number; answered: number }> = [];
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        const batch = { size: items.length, turns, answered: Number.NaN };
        batches.push(batch);
        const out = await store.inbox.ingestFromInbox(items, applied);
        batch.answered = turns;
        return out;
      },
    };
    const intake = await startInboxIntake(ledger, map, () => {});
    ticking = false;
    await intake.close();

    assert.equal(
      batches.reduce((n, b) => n + b.size, 0),
      100,
    );
    assert.ok(batches.length >= 5, `100 deliveries in ${batches.length} batches`);
    assert.ok(
      batches.every((b) => b.size <= 24),
      `batch sizes ${batches.map((b) => b.size).join(", ")}`,
    );
    for (let i = 1; i < batches.length; i++) {
      assert.ok(
        batches[i]!.turns > batches[i - 1]!.answered,
        `the loop ran nothing between batch ${i - 1} being applied and batch ${i} being started`,
      );
    }
  });

  it("applies a larger backlog in larger batches (an eighth of what waits, up to 8 × 24), shrinking as it drains", async (t) => {
    const store = await storeWithBacklog(t, 2000);
    const sizes: number[] = [];
    const intake = await startInboxIntake(store.inbox, map, () => {}, {
      onApply: (size) => sizes.push(size),
    });
    await intake.close();

    assert.equal(
      sizes.reduce((n, s) => n + s, 0),
      2000,
    );
    // 2,000 waiting: 2000 / 8 = 250, capped at 192; then 1808 / 8 → 226, capped; … until an eighth is
    // under 192, then 24 at least.
    assert.deepEqual(sizes.slice(0, 3), [192, 192, 192], `batch sizes ${sizes.join(", ")}`);
    for (let i = 1; i < sizes.length; i++) {
      assert.ok(sizes[i]! <= sizes[i - 1]!, `batch sizes never grow while it drains: ${sizes.join(", ")}`);
    }
    assert.ok(
      sizes.slice(0, -1).every((s) => s >= 24),
      `only the last batch is under 24: ${sizes.join(", ")}`,
    );
    assert.ok(sizes.length < 2000 / 24, `fewer batches than fixed batches of 24 would take: ${sizes.length}`);
  });

  it("while the store cannot take a batch: accepted deliveries wait, new ones are refused, then all go in", async (t) => {
    const store = openStore(t);
    let refuse = true;
    let refused = 0;
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        if (refuse) {
          refused++;
          throw new StoreError("database is locked", { retryable: true });
        }
        return store.inbox.ingestFromInbox(items, applied);
      },
    };
    const outcomes: string[] = [];
    const intake = await startInboxIntake(ledger, map, (d, o) => outcomes.push(`${d.webhookId}:${o}`), {
      applyDelayMs: 1,
      maxRetryMs: 20,
    });
    t.after(() => intake.close());

    assert.equal(await intake.accept(record("a", "w1")), "accepted");
    await waitFor(() => refused > 0, { what: "the store refusing the batch" });
    await assert.rejects(
      intake.accept(record("b", "w2")),
      (e: unknown) => e instanceof StoreError && e.retryable,
    );
    await assert.rejects(intake.settle(50), StoreError);
    assert.equal(intake.unapplied(), 1, "the accepted delivery waits (the refused one is not counted)");

    refuse = false;
    await intake.settle();
    assert.deepEqual(outcomes, ["w1:applied"]);
    assert.equal(intake.unapplied(), 0);
    assert.equal(await intake.accept(record("b", "w2")), "accepted");
    await intake.settle();
    assert.deepEqual(outcomes, ["w1:applied", "w2:applied"]);
  });

  it("a delivery the store refuses on its own is kept as a dead letter; the rest of its batch goes in", async (t) => {
    const store = openStore(t);
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        if (items.some((i) => i.webhookId === "poison" && i.mapped.kind === "event")) {
          throw new StoreError("CHECK constraint failed", { retryable: false });
        }
        return store.inbox.ingestFromInbox(items, applied);
      },
    };
    const outcomes: string[] = [];
    const intake = await startInboxIntake(ledger, map, (d, o) => outcomes.push(`${d.webhookId}:${o}`), {
      applyDelayMs: 50,
    });
    t.after(() => intake.close());
    await Promise.all([
      intake.accept(record("a", "w1")),
      intake.accept(record("p", "poison")),
      intake.accept(record("b", "w2")),
    ]);
    await intake.settle();
    assert.deepEqual(outcomes, ["w1:applied", "poison:dead_lettered", "w2:applied"]);
    const [letter] = await store.listDeadLetters({ limit: 10 });
    assert.equal(letter?.webhookId, "poison");
    assert.match(letter?.reason ?? "", /the store refused it: CHECK constraint failed/);
  });
});

describe("inbox intake, the answer", () => {
  it("waits for the inbox only: it is given while the store's transaction for it has not even finished", async (t) => {
    const store = openStore(t);
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    let calls = 0;
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        calls++;
        await held;
        return store.inbox.ingestFromInbox(items, applied);
      },
    };
    const outcomes: string[] = [];
    const intake = await startInboxIntake(ledger, map, (d, o) => outcomes.push(`${d.webhookId}:${o}`), {
      applyDelayMs: 0,
    });
    t.after(() => intake.close());
    assert.equal(await intake.accept(record("a", "w1")), "accepted");
    await waitFor(() => calls === 1, { what: "the store's transaction started" });
    // Answered while that transaction is held; so is a second delivery.
    assert.equal(await intake.accept(record("b", "w2")), "accepted");
    assert.deepEqual(outcomes, []);
    release();
    await intake.settle();
    assert.deepEqual(outcomes, ["w1:applied", "w2:applied"]);
  });
});

describe("inbox intake, a delivery the store cannot take in any form", () => {
  it("holds the inbox (never passes an acknowledged delivery over) and refuses new ones until the store takes it", async (t) => {
    const store = openStore(t);
    let broken = true;
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        if (broken && items.some((i) => i.webhookId === "poison")) {
          throw new StoreError("database disk image is malformed", { retryable: false });
        }
        return store.inbox.ingestFromInbox(items, applied);
      },
    };
    const outcomes: string[] = [];
    const errors: string[] = [];
    const intake = await startInboxIntake(ledger, map, (d, o) => outcomes.push(`${d.webhookId}:${o}`), {
      applyDelayMs: 50,
      maxRetryMs: 20,
      onError: (_e, what) => errors.push(what),
    });
    t.after(() => intake.close());
    await Promise.all(["w1", "poison", "w2"].map((id) => intake.accept(record(id, id))));
    await waitFor(
      () => errors.includes("the store refused a delivery even as a dead letter; holding the inbox"),
      {
        what: "the inbox held",
      },
    );
    assert.deepEqual(outcomes, ["w1:applied"], "nothing behind the held delivery went in");
    await assert.rejects(intake.accept(record("w3", "w3")), StoreError);
    broken = false;
    await intake.settle();
    assert.deepEqual(outcomes, ["w1:applied", "poison:applied", "w2:applied"]);
  });
});

describe("inbox intake, purge", () => {
  it("deletes the applied deliveries' raw bodies, the segment still being written included", async (t) => {
    const store = openStore(t);
    const intake = await startInboxIntake(store.inbox, map, () => {}, { applyDelayMs: 1 });
    t.after(() => intake.close());
    await intake.accept(record("p1", "purge-me-1"));
    await intake.accept(record("p2", "purge-me-2"));
    await intake.purge();
    await intake.accept(record("k1", "keep-1"));
    const text = readdirSync(store.inbox.dir)
      .map((n) => readFileSync(join(store.inbox.dir, n)).toString("latin1"))
      .join("");
    assert.ok(!text.includes("purge-me-"), "the purged deliveries are in no file");
    assert.ok(text.includes("keep-1"), "a delivery after the purge is kept");
  });
});

describe("inbox intake, settle", () => {
  it("waits for what was accepted before it, not for deliveries accepted after", async (t) => {
    const store = openStore(t);
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    const ledger: InboxLedger = {
      ...store.inbox,
      async ingestFromInbox(items, applied) {
        // The store takes "before" at once and holds anything with "after" (a delivery still going in).
        if (items.some((i) => i.webhookId === "after")) await held;
        return store.inbox.ingestFromInbox(items, applied);
      },
    };
    const outcomes: string[] = [];
    const intake = await startInboxIntake(ledger, map, (d, o) => outcomes.push(`${d.webhookId}:${o}`), {
      applyDelayMs: 1000,
    });
    t.after(async () => {
      release();
      await intake.close();
    });
    await intake.accept(record("b", "before"));
    const settled = intake.settle(1000);
    await intake.accept(record("a", "after"));
    await settled;
    assert.deepEqual(outcomes, ["before:applied"]);
  });
});

describe("inbox ledger", () => {
  it("syncing the database's files keeps SQLite's locks on them (no descriptor of the file is closed)", async (t) => {
    if (!existsSync("/proc/locks")) return t.skip("no /proc/locks on this system");
    const dir = mkdtempSync(join(tmpdir(), "cartbridge-inbox-"));
    const path = join(dir, "cartbridge.db");
    const store = openSqliteStore(path, { server: true });
    t.after(async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    });
    await store.stats(Date.now());
    const inode = statSync(path).ino;
    const held = (): number =>
      readFileSync("/proc/locks", "utf8")
        .split("\n")
        .filter((l) => l.includes(`:${inode} `) && l.split(/\s+/).includes(String(process.pid))).length;
    const before = held();
    assert.ok(before > 0, "SQLite holds a lock on the database file");
    await store.inbox!.syncCommitted();
    await store.inbox!.syncCommitted();
    assert.equal(held(), before);
  });
});

describe("checkpoint gate", () => {
  it("holds calls while the checkpoint thread's flag is set and runs them in order after", async () => {
    const busy = new Int32Array(new SharedArrayBuffer(4));
    const gate = createCheckpointGate(busy);
    const ran: string[] = [];
    const call = (name: string) => gate(() => Promise.resolve(ran.push(name)));
    await call("free");
    Atomics.store(busy, 0, 1);
    const held = [call("one"), call("two")];
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ran, ["free"], "nothing runs while the flag is set");
    Atomics.store(busy, 0, 0);
    // A call made now waits behind the held ones.
    held.push(call("three"));
    await Promise.all(held);
    assert.deepEqual(ran, ["free", "one", "two", "three"]);
  });

  it("runs the calls it held one per turn of the loop, so I/O gets in between", async () => {
    const busy = new Int32Array(new SharedArrayBuffer(4));
    const gate = createCheckpointGate(busy);
    const ran: string[] = [];
    // Each held call marks the loop's next check phase; the next call sees whether it came in between.
    const call = (name: string) =>
      gate(() => {
        ran.push(name);
        setImmediate(() => ran.push(`turn after ${name}`));
        return Promise.resolve();
      });
    Atomics.store(busy, 0, 1);
    const held = [call("one"), call("two"), call("three")];
    await new Promise((r) => setTimeout(r, 5));
    Atomics.store(busy, 0, 0);
    await Promise.all(held);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(ran, ["one", "turn after one", "two", "turn after two", "three", "turn after three"]);
  });
});
