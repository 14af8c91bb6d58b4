/* eslint-disable @typescript-eslint/require-await -- node:sqlite is synchronous; async keeps the port's promise contract (errors reject, never throw) */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { SqliteActivity } from "./sqlite-activity.ts";
import type { SqliteLineItems } from "./sqlite-line-items.ts";
import type { SqliteTransaction } from "./sqlite-transaction.ts";
import type { DataSubject, Store, SubjectRecords } from "./store.ts";
import { createSubjectMatcher } from "./subject-match.ts";

/** Privacy's part of the port: erasure (customers/redact, shop/redact), data requests, and retention. */
export type SqlitePrivacy = Pick<Store, "redact" | "describeSubject" | "purgeExpired">;

/**
 * Matches rows of a shop, and of one customer when an e-mail or phone is given (in ?2 / ?3): the body names
 * that e-mail or phone exactly (subject-match.ts), never as part of a longer one.
 */
const SUBJECT_BODY = "(?2 IS NULL AND ?3 IS NULL) OR cartbridge_names_subject(body, ?2, ?3)";

type Row = Record<string, unknown>;

/** Erasure, data requests and retention over every table that holds a shop's or a buyer's data. */
export function createSqlitePrivacy(
  db: DatabaseSync,
  transaction: SqliteTransaction,
  parts: { readonly lineItems: SqliteLineItems; readonly activity: SqliteActivity },
): SqlitePrivacy {
  registerSubjectMatcher(db);
  const sql = (text: string): StatementSync => db.prepare(text);
  const q = {
    // A kept body is as old as the delivery it came with (its id's receipt time; the cart's last change
    // when that id is not known), whatever is still pending: the merged state is what gets sent.
    purgeBodies: sql(`DELETE FROM cart_deliveries WHERE coalesce(
        (SELECT received_at FROM deliveries AS d WHERE d.webhook_id = cart_deliveries.webhook_id),
        (SELECT updated_at FROM carts AS c WHERE c.key = cart_deliveries.cart_key), 0) < ?`),
    purgeDeliveries: sql("DELETE FROM deliveries WHERE received_at < ?"),
    purgeDeadLetters: sql("DELETE FROM dead_letters WHERE created_at < ?"),
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
    deleteShopCheckoutLinks: sql("DELETE FROM checkout_links WHERE shop = ?"),
    deleteShopMissed: sql("DELETE FROM reconcile_missed WHERE shop = ?"),
  };
  const { lineItems, activity } = parts;

  return {
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
        if (shopOnly) {
          lineItems.redactShop(subject.shopDomain);
          // What the shop's buyers did (checkout tokens, delivery counts, the last missed cart). Reconciliation's
          // watermarks stay, so a shop still configured is not read back in from its beginning.
          q.deleteShopCheckoutLinks.run(subject.shopDomain);
          q.deleteShopMissed.run(subject.shopDomain);
          activity.redactShop(subject.shopDomain);
        }
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
  };
}

/** The statements' parameters ?1 (shop), ?2 (e-mail, lower case) and ?3 (phone); NULL when not given. */
function subjectParams(subject: DataSubject): [string, string | null, string | null] {
  return [subject.shopDomain, subject.email?.toLowerCase() ?? null, subject.phone ?? null];
}

/** `cartbridge_names_subject(body, email, phone)`, the SQL face of subject-match.ts (see SUBJECT_BODY). */
function registerSubjectMatcher(db: DatabaseSync): void {
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
}
