/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { StoreError } from "../errors.ts";
import { createSqliteActivity } from "./sqlite-activity.ts";
import { startCheckpointer, type Checkpointer } from "./sqlite-checkpointer.ts";
import { lockSqliteFile, type ProcessLock } from "./sqlite-process-lock.ts";
import { migrateSqlite } from "./sqlite-schema.ts";
import { createSqliteReconcileStore } from "./sqlite-reconcile.ts";
import { createSqliteLineItems, releaseSqliteLineClaims } from "./sqlite-line-items.ts";
import { createSubjectMatcher } from "./subject-match.ts";
import { isSqliteUnavailable } from "./sqlite-errors.ts";
import { contactOf, optionalNumber, stampOf, toClaimedContact, toDeadLetter } from "./rows.ts";
import type { CartEvent } from "../sync/cart-event.ts";
import { mergeContact, mergeEvent, type CartState } from "../sync/merge.ts";
import type {
  ClaimedCart,
  DataSubject,
  DeadLetter,
  IngestItem,
  IngestOutcome,
  PendingSummary,
  RejectedCart,
  SentCart,
  Store,
  StoreStats,
  SubjectRecords,
} from "./store.ts";

/** Clears a cart's kept delivery once neither the cart nor its buyer waits to be sent. */
const CLEAR_SENT_DELIVERY = `DELETE FROM cart_deliveries WHERE cart_key = ?1
    AND EXISTS (SELECT 1 FROM carts WHERE key = ?1 AND version <= synced_version)
    AND NOT EXISTS (SELECT 1 FROM contact_links WHERE cart_key = ?1 AND version > synced_version)`;

/**
 * Matches rows of a shop, and of one customer when an e-mail or phone is given (in ?2 / ?3): the body names
 * that e-mail or phone exactly (subject-match.ts), never as part of a longer one.
 */
const SUBJECT_BODY = "(?2 IS NULL AND ?3 IS NULL) OR cartbridge_names_subject(body, ?2, ?3)";

type Row = Record<string, unknown>;

/** The database at `path`, WAL, migrated; closed again when migrating fails. */
function openMigrated(path: string): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: 5000 });
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
    migrateSqlite(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Opens (and migrates) the embedded store at `path`: WAL, full fsync at commit, one writer.
 * `server: true` (the bridge itself, never a CLI tool) releases every contact claim left by a previous
 * process (SQLite serves one instance, so any found at start-up belongs to a process that died; cart claims
 * live in memory) and moves WAL checkpoints to a background thread. It also takes the file's process lock
 * (sqlite-process-lock.ts): a second bridge on the same file fails here with a clear StoreError.
 */
export function openSqliteStore(path: string, opts: { server?: boolean } = {}): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const lock: ProcessLock | undefined =
    opts.server === true && path !== ":memory:" ? lockSqliteFile(path) : undefined;
  let db: DatabaseSync;
  try {
    db = openMigrated(path);
  } catch (error) {
    lock?.release();
    throw error;
  }
  const namesSubject = createSubjectMatcher();
  db.function("cartbridge_names_subject", { deterministic: true, directOnly: true }, (body, email, phone) =>
    namesSubject(
      body instanceof Uint8Array ? body : null,
      typeof email === "string" ? email : null,
      typeof phone === "string" ? phone : null,
    )
      ? 1
      : 0,
  );
  let checkpointer: Checkpointer | undefined;
  if (opts.server === true) {
    db.exec("UPDATE contact_links SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL");
    releaseSqliteLineClaims(db);
    if (path !== ":memory:") {
      db.exec("PRAGMA wal_autocheckpoint = 0");
      checkpointer = startCheckpointer(path, {
        onFailure: (error) => {
          // Loud, and the WAL is bounded again: a failure to turn checkpoints back on ends the process.
          process.emitWarning(
            `SQLite checkpoint thread failed (${error.message}); automatic checkpoints are on`,
          );
          if (db.isOpen) db.exec("PRAGMA wal_autocheckpoint = 1000");
        },
      });
    }
  }

  const sql = (text: string): StatementSync => db.prepare(text);
  const q = {
    insertDelivery: sql("INSERT OR IGNORE INTO deliveries (webhook_id, received_at) VALUES (?, ?)"),
    getCart: sql("SELECT state, version FROM carts WHERE key = ?"),
    insertCart: sql(`INSERT INTO carts (key, shop, state, version, pending_since, updated_at)
        VALUES (?, ?, ?, 1, ?, ?)`),
    keepDelivery: sql(`INSERT INTO cart_deliveries (cart_key, shop, topic, webhook_id, headers, body)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (cart_key) DO UPDATE SET topic = ?3, webhook_id = ?4,
        headers = ?5, body = ?6`),
    updateCartChanged: sql(`UPDATE carts SET state = ?, version = version + 1,
        pending_since = coalesce(pending_since, ?), updated_at = ? WHERE key = ?`),
    updateCartState: sql("UPDATE carts SET state = ?, updated_at = ? WHERE key = ?"),
    insertDeadLetter:
      sql(`INSERT INTO dead_letters (created_at, source, topic, shop, webhook_id, cart_key, reason,
        category, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    dueCandidates: sql(`SELECT key, pending_since FROM carts
        WHERE pending_since IS NOT NULL AND next_attempt_at <= ?1 ORDER BY pending_since LIMIT ?2`),
    nextRetry: sql(`SELECT min(next_attempt_at) AS t FROM carts
        WHERE pending_since IS NOT NULL AND next_attempt_at > ?`),
    claimCandidates: sql(`SELECT key, version, attempts, state, hubspot_id FROM carts
        WHERE pending_since IS NOT NULL AND next_attempt_at <= ?1 ORDER BY pending_since LIMIT ?2`),
    markSent: sql(`UPDATE carts SET
        synced_version = max(synced_version, ?1),
        pending_since = CASE WHEN version <= ?1 THEN NULL ELSE pending_since END,
        attempts = 0, next_attempt_at = 0, last_error = NULL,
        hubspot_id = coalesce(?2, hubspot_id), last_sent_at = coalesce(?4, last_sent_at)
        WHERE key = ?3`),
    markFailed: sql(`UPDATE carts SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?
        WHERE key = ?`),
    cartForDeadLetter: sql(`SELECT c.shop, d.topic AS last_topic, d.webhook_id AS last_webhook_id,
        d.headers AS last_headers, d.body AS last_body FROM carts c LEFT JOIN cart_deliveries d ON d.cart_key = c.key
        WHERE c.key = ?`),
    markPending: sql(`UPDATE carts SET pending_since = coalesce(pending_since, ?), version = version + 1,
        attempts = 0, next_attempt_at = 0 WHERE key = ?`),
    repend: sql(
      "UPDATE carts SET pending_since = coalesce(pending_since, ?), version = version + 1 WHERE key = ?",
    ),
    listDeadLetters: sql("SELECT * FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?"),
    getDeadLetter: sql("SELECT * FROM dead_letters WHERE id = ?"),
    deleteDeadLetter: sql("DELETE FROM dead_letters WHERE id = ?"),
    // A kept body is as old as the delivery it came with (its id's receipt time; the cart's last change
    // when that id is not known), whatever is still pending: the merged state is what gets sent.
    purgeBodies: sql(`DELETE FROM cart_deliveries WHERE coalesce(
        (SELECT received_at FROM deliveries AS d WHERE d.webhook_id = cart_deliveries.webhook_id),
        (SELECT updated_at FROM carts AS c WHERE c.key = cart_deliveries.cart_key), 0) < ?`),
    purgeDeliveries: sql("DELETE FROM deliveries WHERE received_at < ?"),
    purgeDeadLetters: sql("DELETE FROM dead_letters WHERE created_at < ?"),
    stats: sql(`SELECT (SELECT count(*) FROM carts WHERE pending_since IS NOT NULL) AS pending,
        (SELECT min(pending_since) FROM carts WHERE pending_since IS NOT NULL) AS oldest,
        (SELECT count(*) FROM dead_letters) AS dead, (SELECT count(*) FROM carts) AS carts`),
    ping: sql("SELECT 1"),
    getContact: sql(`SELECT email, firstname, lastname, phone, stamp_time, stamp_rank, stamp_webhook
        FROM contact_links WHERE cart_key = ?`),
    upsertContact:
      sql(`INSERT INTO contact_links (cart_key, shop, email, firstname, lastname, phone, stamp_time,
        stamp_rank, stamp_webhook, version, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?11)
        ON CONFLICT (cart_key) DO UPDATE SET email = ?3, firstname = ?4, lastname = ?5, phone = ?6,
          stamp_time = ?7, stamp_rank = ?8, stamp_webhook = ?9, version = version + ?10, updated_at = ?11`),
    contactsDue: sql(`SELECT l.cart_key, l.version, l.attempts, l.email, l.firstname, l.lastname, l.phone,
        c.hubspot_id FROM contact_links l JOIN carts c ON c.key = l.cart_key
        WHERE l.version > l.synced_version AND l.email IS NOT NULL AND c.hubspot_id IS NOT NULL
          AND l.next_attempt_at <= ?1 AND (l.lease_until IS NULL OR l.lease_until < ?1)
        ORDER BY l.updated_at LIMIT ?2`),
    leaseContact: sql("UPDATE contact_links SET lease_owner = ?, lease_until = ? WHERE cart_key = ?"),
    contactSent: sql(`UPDATE contact_links SET synced_version = max(synced_version, ?1),
        email = CASE WHEN version <= ?1 THEN NULL ELSE email END,
        firstname = CASE WHEN version <= ?1 THEN NULL ELSE firstname END,
        lastname = CASE WHEN version <= ?1 THEN NULL ELSE lastname END,
        phone = CASE WHEN version <= ?1 THEN NULL ELSE phone END,
        attempts = 0, next_attempt_at = 0, last_error = NULL,
        lease_owner = NULL, lease_until = NULL
        WHERE cart_key = ?3 AND lease_owner = ?2`),
    contactHeld: sql("SELECT 1 FROM contact_links WHERE cart_key = ? AND lease_owner = ?"),
    contactFailed: sql(`UPDATE contact_links SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
        lease_owner = NULL, lease_until = NULL WHERE cart_key = ? AND lease_owner = ?`),
    contactRelease: sql(
      "UPDATE contact_links SET lease_owner = NULL, lease_until = NULL WHERE cart_key = ? AND lease_owner = ?",
    ),
    deleteContact: sql("DELETE FROM contact_links WHERE cart_key = ?"),
    clearSentDelivery: sql(CLEAR_SENT_DELIVERY),
    purgeContacts: sql("DELETE FROM contact_links WHERE updated_at < ?"),
    subjectContacts: sql(`SELECT count(*) AS n FROM contact_links WHERE shop = ?1 AND email IS NOT NULL
        AND ((?2 IS NULL AND ?3 IS NULL) OR lower(email) = ?2 OR phone = ?3)`),
    redactContacts: sql(`DELETE FROM contact_links WHERE shop = ?1
        AND ((?2 IS NULL AND ?3 IS NULL) OR lower(email) = ?2 OR phone = ?3)`),
    subjectDeadLetters: sql(`SELECT count(*) AS n FROM dead_letters WHERE shop = ?1 AND (${SUBJECT_BODY})`),
    redactDeadLetters: sql(`DELETE FROM dead_letters WHERE shop = ?1 AND (${SUBJECT_BODY})`),
    subjectDeliveries: sql(`SELECT count(*) AS n FROM cart_deliveries WHERE shop = ?1 AND (${SUBJECT_BODY})`),
    redactDeliveries: sql(`DELETE FROM cart_deliveries WHERE shop = ?1 AND (${SUBJECT_BODY})`),
    shopCarts: sql("SELECT count(*) AS n FROM carts WHERE shop = ?"),
    deleteShopCarts: sql("DELETE FROM carts WHERE shop = ?"),
  };

  /**
   * Runs `fn` in one IMMEDIATE transaction; a failure rolls back and surfaces as StoreError.
   * Durable transactions (acknowledged deliveries, erasures, dead letters) fsync at commit. The sender's
   * bookkeeping (claims, sent marks, retries) is `relaxed`: WAL with synchronous=NORMAL survives a process
   * crash, and what a power loss could undo is only a cart sent again — an idempotent upsert.
   */
  function transaction<T>(what: string, fn: () => T, mode: "durable" | "relaxed" = "durable"): T {
    try {
      if (mode === "relaxed") {
        syncRelaxed = true;
        db.exec("PRAGMA synchronous = NORMAL");
      } else if (syncRelaxed) {
        // An earlier relaxed transaction could not restore FULL: a durable commit must not run without it.
        db.exec("PRAGMA synchronous = FULL");
        syncRelaxed = false;
      }
      db.exec("BEGIN IMMEDIATE");
    } catch (cause) {
      restoreSync(mode);
      throw new StoreError(`could not begin ${what}`, { retryable: true, cause });
    }
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (cause) {
      try {
        if (db.isTransaction) db.exec("ROLLBACK");
      } catch {
        // The connection is unusable; the original error is what matters.
      }
      throw new StoreError(`${what} failed`, { retryable: isSqliteUnavailable(cause), cause });
    } finally {
      restoreSync(mode);
    }
  }

  /** Whether synchronous may still be NORMAL (a relaxed transaction ran and FULL was not restored yet). */
  let syncRelaxed = false;
  function restoreSync(mode: "durable" | "relaxed"): void {
    if (mode !== "relaxed") return;
    try {
      db.exec("PRAGMA synchronous = FULL");
      syncRelaxed = false;
    } catch {
      // syncRelaxed stays set: the next durable transaction restores FULL first, or fails (503, never 200).
    }
  }

  /**
   * Claims on carts live in memory: SQLite serves one bridge process, so a claim never needs to outlive
   * it, and claiming costs a read instead of rewriting a hundred rows.
   */
  const leases = new Map<string, { owner: string; untilMs: number }>();
  const leased = (key: string, nowMs: number): boolean => (leases.get(key)?.untilMs ?? -1) >= nowMs;
  /**
   * Write-backs are fenced by owner: in one process a claim changes hands only when another sender claims
   * the cart after the lease ran out, and then the first one's answer no longer counts.
   */
  const holds = (key: string, owner: string): boolean => leases.get(key)?.owner === owner;
  const releaseLease = (key: string, owner: string): void => {
    if (leases.get(key)?.owner === owner) leases.delete(key);
  };

  function ingestOne(item: IngestItem): IngestOutcome {
    if (item.webhookId !== undefined && item.replay !== true) {
      if (q.insertDelivery.run(item.webhookId, item.receivedAtMs).changes === 0) return "duplicate";
    }
    const mapped = item.mapped;
    switch (mapped.kind) {
      case "unhandled":
        return "ignored";
      case "unkeyed":
        return "unkeyed";
      case "invalid":
        q.insertDeadLetter.run(
          item.receivedAtMs,
          "mapping",
          item.topic,
          item.shopDomain,
          item.webhookId ?? null,
          null,
          mapped.reason,
          "UNMAPPABLE",
          JSON.stringify(item.headers),
          item.body,
        );
        return "dead_lettered";
      case "event": {
        const event = mapped.event;
        const row = q.getCart.get(event.key) as Row | undefined;
        const current = row === undefined ? undefined : (JSON.parse(row["state"] as string) as CartState);
        const { state, changed } = mergeEvent(current, event);
        const keepDelivery = (): void => {
          q.keepDelivery.run(
            event.key,
            event.shopDomain,
            item.topic,
            item.webhookId ?? null,
            JSON.stringify(item.headers),
            item.body,
          );
        };
        if (event.contact !== undefined) ingestContact(event);
        lineItems.ingestLineSet(event, item.receivedAtMs);
        if (row === undefined) {
          q.insertCart.run(
            event.key,
            event.shopDomain,
            JSON.stringify(state),
            item.receivedAtMs,
            item.receivedAtMs,
          );
          keepDelivery();
          return "applied";
        }
        if (changed) {
          q.updateCartChanged.run(JSON.stringify(state), item.receivedAtMs, item.receivedAtMs, event.key);
          keepDelivery();
          return "applied";
        }
        // Newer stamps with equal values still move forward, so later comparisons stay exact.
        q.updateCartState.run(JSON.stringify(state), item.receivedAtMs, event.key);
        return "unchanged";
      }
    }
  }

  function ingestContact(event: CartEvent): void {
    const row = q.getContact.get(event.key) as Row | undefined;
    const current = row === undefined ? undefined : { stamp: stampOf(row), value: contactOf(row) };
    const merged = mergeContact(current, event);
    if (merged === undefined) return;
    const { value, stamp } = merged.contact;
    q.upsertContact.run(
      event.key,
      event.shopDomain,
      value.email,
      value.firstname ?? null,
      value.lastname ?? null,
      value.phone ?? null,
      stamp.timeMs,
      stamp.topicRank,
      stamp.webhookId,
      merged.changed ? 1 : 0,
      Date.now(),
    );
  }

  function subjectParams(subject: DataSubject): [string, string | null, string | null] {
    return [subject.shopDomain, subject.email?.toLowerCase() ?? null, subject.phone ?? null];
  }

  const lineItems = createSqliteLineItems(db, transaction, q.insertDeadLetter);
  const activity = createSqliteActivity(db, toDeadLetter);

  return {
    reconcile: createSqliteReconcileStore(db, (what, fn) => transaction(what, fn, "relaxed")),
    ...lineItems,
    activity: activity.queries,

    async ingestBatch(items) {
      return transaction("ingest", () => {
        const outcomes = items.map(ingestOne);
        activity.record(items, outcomes);
        return outcomes;
      });
    },

    async pendingSummary(nowMs, cap): Promise<PendingSummary> {
      const due = (q.dueCandidates.all(nowMs, cap + leases.size) as Row[]).filter(
        (r) => !leased(String(r["key"]), nowMs),
      );
      const retry = q.nextRetry.get(nowMs) as Row;
      return {
        dueCount: Math.min(cap, due.length),
        oldestDueSinceMs: optionalNumber(due[0]?.["pending_since"]),
        nextRetryAtMs: optionalNumber(retry["t"]),
      };
    },

    async claimDue({ limit, nowMs, leaseMs, owner }) {
      for (const [key, lease] of leases) if (lease.untilMs < nowMs) leases.delete(key);
      const rows = (q.claimCandidates.all(nowMs, limit + leases.size) as Row[])
        .filter((r) => !leased(String(r["key"]), nowMs))
        .slice(0, limit);
      return rows.map((row): ClaimedCart => {
        const key = String(row["key"]);
        leases.set(key, { owner, untilMs: nowMs + leaseMs });
        return {
          key,
          version: Number(row["version"]),
          attempts: Number(row["attempts"]),
          state: JSON.parse(String(row["state"])) as CartState,
          hubspotId: (row["hubspot_id"] as string | null) ?? undefined,
        };
      });
    },

    async markSent(carts: readonly SentCart[], owner) {
      const marked = carts.filter((c) => holds(c.key, owner));
      transaction(
        "mark sent",
        () => {
          for (const c of carts) {
            if (!marked.includes(c)) {
              // Lost claim: a newer version may have been sent meanwhile; send the current state again.
              q.repend.run(Date.now(), c.key);
              continue;
            }
            q.markSent.run(c.version, c.hubspotId ?? null, c.key, Date.now());
            q.clearSentDelivery.run(c.key);
          }
        },
        "relaxed",
      );
      for (const c of marked) releaseLease(c.key, owner);
      return marked;
    },

    async markFailed(keys, owner, { nextAttemptAtMs, error }) {
      const held = keys.filter((key) => leases.get(key)?.owner === owner);
      transaction(
        "mark failed",
        () => {
          for (const key of keys) {
            if (held.includes(key)) q.markFailed.run(nextAttemptAtMs, error, key);
            else q.repend.run(Date.now(), key); // as in markSent: the failed write may still have landed
          }
        },
        "relaxed",
      );
      for (const key of held) releaseLease(key, owner);
    },

    async renewClaims(keys, owner, { nowMs, leaseMs }) {
      const renewed: string[] = [];
      for (const key of keys) {
        const lease = leases.get(key);
        if (lease?.owner !== owner) continue;
        lease.untilMs = nowMs + leaseMs;
        renewed.push(key);
      }
      return renewed;
    },

    async release(keys, owner) {
      for (const key of keys) releaseLease(key, owner);
    },

    async markRejected(carts: readonly RejectedCart[], owner, nowMs) {
      transaction("mark rejected", () => {
        for (const c of carts) {
          // A lost claim's rejection is dropped: HubSpot wrote nothing, the new owner sends the cart.
          if (!holds(c.key, owner)) continue;
          const row = q.cartForDeadLetter.get(c.key) as Row | undefined;
          if (row === undefined) continue;
          q.insertDeadLetter.run(
            nowMs,
            "hubspot",
            (row["last_topic"] as string | null) ?? "unknown",
            String(row["shop"]),
            (row["last_webhook_id"] as string | null) ?? null,
            c.key,
            c.reason,
            c.category ?? null,
            (row["last_headers"] as string | null) ?? "{}",
            (row["last_body"] as Uint8Array | null) ?? null,
          );
          q.markSent.run(c.version, null, c.key, null);
          q.clearSentDelivery.run(c.key);
        }
      });
      for (const c of carts) releaseLease(c.key, owner);
      return;
    },

    async listDeadLetters({ limit, afterId }) {
      return (q.listDeadLetters.all(afterId ?? 0, limit) as Row[]).map(toDeadLetter);
    },

    async getDeadLetters(ids) {
      const found: DeadLetter[] = [];
      for (const id of ids) {
        const row = q.getDeadLetter.get(id) as Row | undefined;
        if (row !== undefined) found.push(toDeadLetter(row));
      }
      return found;
    },

    async deleteDeadLetters(ids) {
      transaction(
        "delete dead letters",
        () => {
          for (const id of ids) q.deleteDeadLetter.run(id);
        },
        "relaxed",
      );
      return;
    },

    async markPending(key, nowMs) {
      transaction("mark pending", () => {
        q.markPending.run(nowMs, key);
        lineItems.markLineSetPending(key, nowMs);
      });
      return;
    },

    async purgeExpired(beforeMs) {
      return transaction(
        "purge",
        () => {
          // Bodies first: their age is read from the delivery ids purged next.
          const bodies = Number(q.purgeBodies.run(beforeMs).changes);
          const a = Number(q.purgeDeliveries.run(beforeMs).changes);
          const b = Number(q.purgeDeadLetters.run(beforeMs).changes);
          const c = Number(q.purgeContacts.run(beforeMs).changes);
          return bodies + a + b + c + activity.purge(beforeMs);
        },
        "relaxed",
      );
    },

    async claimContactsDue({ limit, nowMs, leaseMs, owner }) {
      return transaction(
        "claim contacts",
        () => {
          const rows = q.contactsDue.all(nowMs, limit) as Row[];
          return rows.map((row) => {
            q.leaseContact.run(owner, nowMs + leaseMs, row["cart_key"] as string);
            return toClaimedContact(row);
          });
        },
        "relaxed",
      );
    },

    async markContactsSent(contacts, owner) {
      transaction(
        "mark contacts sent",
        () => {
          for (const c of contacts) {
            q.contactSent.run(c.version, owner, c.cartKey);
            q.clearSentDelivery.run(c.cartKey);
          }
        },
        "relaxed",
      );
      return;
    },

    async markContactsFailed(keys, owner, { nextAttemptAtMs, error }) {
      transaction(
        "mark contacts failed",
        () => {
          for (const key of keys) q.contactFailed.run(nextAttemptAtMs, error, key, owner);
        },
        "relaxed",
      );
      return;
    },

    async releaseContacts(keys, owner) {
      transaction(
        "release contacts",
        () => {
          for (const key of keys) q.contactRelease.run(key, owner);
        },
        "relaxed",
      );
      return;
    },

    async markContactsRejected(contacts, owner, nowMs) {
      transaction("mark contacts rejected", () => {
        for (const c of contacts) {
          if (q.contactHeld.get(c.cartKey, owner) === undefined) continue;
          const row = q.cartForDeadLetter.get(c.cartKey) as Row | undefined;
          q.insertDeadLetter.run(
            nowMs,
            "hubspot",
            (row?.["last_topic"] as string | null | undefined) ?? "unknown",
            (row?.["shop"] as string | undefined) ?? c.cartKey.split(":")[0] ?? "",
            (row?.["last_webhook_id"] as string | null | undefined) ?? null,
            c.cartKey,
            `contact: ${c.reason}`,
            c.category ?? null,
            (row?.["last_headers"] as string | null | undefined) ?? "{}",
            (row?.["last_body"] as Uint8Array | null | undefined) ?? null,
          );
          // Forget the buyer entirely, so a replay of the dead letter links it again.
          q.deleteContact.run(c.cartKey);
          q.clearSentDelivery.run(c.cartKey);
        }
      });
      return;
    },

    async redact(subject): Promise<SubjectRecords> {
      const p = subjectParams(subject);
      return transaction("redact", () => {
        const shopOnly = p[1] === null && p[2] === null;
        const contacts = Number(q.redactContacts.run(...p).changes);
        const deadLetters = Number(q.redactDeadLetters.run(...p).changes);
        // On shop/redact the kept deliveries go with the carts (counted as carts, as in PostgreSQL).
        const deliveries = Number(q.redactDeliveries.run(...p).changes);
        const pendingDeliveries = shopOnly ? 0 : deliveries;
        const carts = shopOnly ? Number(q.deleteShopCarts.run(subject.shopDomain).changes) : 0;
        if (shopOnly) lineItems.redactShop(subject.shopDomain);
        return { carts, contacts, deadLetters, pendingDeliveries };
      });
    },

    async describeSubject(subject): Promise<SubjectRecords> {
      const p = subjectParams(subject);
      const shopOnly = p[1] === null && p[2] === null;
      const count = (stmt: StatementSync, ...args: Array<string | null>) =>
        Number((stmt.get(...args) as Row)["n"]);
      return {
        carts: shopOnly ? count(q.shopCarts, subject.shopDomain) : 0,
        contacts: count(q.subjectContacts, ...p),
        deadLetters: count(q.subjectDeadLetters, ...p),
        pendingDeliveries: count(q.subjectDeliveries, ...p),
      };
    },

    async stats(_nowMs): Promise<StoreStats> {
      const row = q.stats.get() as Row;
      return {
        pendingCarts: Number(row["pending"]),
        oldestPendingSinceMs: optionalNumber(row["oldest"]),
        deadLetters: Number(row["dead"]),
        carts: Number(row["carts"]),
      };
    },

    async ping() {
      try {
        q.ping.get();
        return;
      } catch (cause) {
        throw new StoreError("store did not answer", { retryable: true, cause });
      }
    },

    async close() {
      try {
        await checkpointer?.stop();
      } finally {
        if (db.isOpen) db.close();
        lock?.release();
      }
    },
  };
}
