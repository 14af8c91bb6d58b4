/**
 * The fake portal's contacts (upserted by e-mail) and cart → contact associations
 * (see ../shared/reference/hubspot.md §2 and §4).
 */
import { CONTACT_PROPERTY_NAMES, EMAIL_PATTERN } from "./hubspot-properties.ts";
import type { PropertyValidationResult } from "./hubspot-properties.ts";
import {
  duplicateIdsError,
  duplicates,
  isRecord,
  notValidMessage,
  parseUpsertInputs,
  validationError,
} from "./hubspot-batch.ts";
import type { FakeResponse, UpsertInput } from "./hubspot-batch.ts";
import { CARTS_TYPE_ID } from "./hubspot-carts.ts";

export interface FakeContact {
  id: string;
  email: string;
  properties: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  writes: number;
}

export interface FakeAssociation {
  cartId: string;
  contactId: string;
  typeId: number;
}

interface AssociationRejection {
  readonly message: string | undefined;
  readonly category: string;
  remaining: number;
}

export const CONTACTS_TYPE_ID = "0-1";
export const CART_TO_CONTACT_TYPE_ID = 586;
export const MAX_ASSOCIATION_INPUTS = 2000;

export class FakeContactStore {
  /** Contacts by lower-cased e-mail. */
  readonly contactsByEmail = new Map<string, FakeContact>();
  private readonly contactsById = new Map<string, FakeContact>();
  private readonly associationsByPair = new Map<string, FakeAssociation>();
  private readonly rejectedEmails = new Set<string>();
  /** Carts (id or key) whose associations get a per-input error (207), and how many more times. */
  private readonly rejectedAssociations = new Map<string, AssociationRejection>();
  private nextContactId = 70_000_000_001;
  private readonly hasCartId: (id: string) => boolean;
  private readonly cartKeyOf: (id: string) => string | undefined;

  constructor(
    hasCartId: (id: string) => boolean,
    cartKeyOf: (id: string) => string | undefined = () => undefined,
  ) {
    this.hasCartId = hasCartId;
    this.cartKeyOf = cartKeyOf;
  }

  rejectContactEmail(email: string): void {
    this.rejectedEmails.add(email.toLowerCase());
  }

  /**
   * Associations from this cart get a per-input error in a 207, as HubSpot answers for an id it does not
   * have (`VALIDATION_ERROR`, `crm.associations.INVALID_OBJECT_IDS`, `context.fromObjectId`), or with
   * another category (`INTERNAL_ERROR`, say) for a failure that may pass; `times` (default: always).
   * `cart` is the cart's id or its id-property value (key).
   */
  rejectAssociation(cart: string, opts: { message?: string; category?: string; times?: number } = {}): void {
    this.rejectedAssociations.set(cart, {
      message: opts.message,
      category: opts.category ?? "VALIDATION_ERROR",
      remaining: opts.times ?? Number.POSITIVE_INFINITY,
    });
  }

  acceptAssociation(cart: string): void {
    this.rejectedAssociations.delete(cart);
  }

  associations(): FakeAssociation[] {
    return [...this.associationsByPair.values()];
  }

  // ---- contacts -----------------------------------------------------------------------------------------------

  upsertContacts(body: unknown): FakeResponse {
    const inputs = parseUpsertInputs(body);
    if (!Array.isArray(inputs)) return inputs;
    const dupIds = duplicates(inputs.map((i) => i.id.toLowerCase()));
    if (dupIds.length > 0) return duplicateIdsError(dupIds);
    for (const input of inputs) {
      const name = input.idProperty ?? "hs_object_id";
      if (name !== "email") {
        return validationError(
          `Unable to perform update/upsert by non-unique ${CONTACTS_TYPE_ID} property ${name}`,
        );
      }
    }
    // Upserts by email cannot partially succeed: any bad input fails the whole batch.
    for (const input of inputs) {
      const problems: PropertyValidationResult[] = [];
      const email = input.id.toLowerCase();
      if (!EMAIL_PATTERN.test(input.id) || this.rejectedEmails.has(email)) {
        problems.push({
          isValid: false,
          message: `Email address ${input.id} is invalid`,
          error: "INVALID_EMAIL",
          name: "email",
        });
      }
      for (const [name, value] of Object.entries(input.properties)) {
        if (!CONTACT_PROPERTY_NAMES.has(name)) {
          problems.push({
            isValid: false,
            message: `Property "${name}" does not exist`,
            error: "PROPERTY_DOESNT_EXIST",
            name,
          });
        } else if (typeof value !== "string") {
          problems.push({
            isValid: false,
            message: `${JSON.stringify(value)} is not a string`,
            error: "INVALID_TYPE",
            name,
          });
        } else if (name === "email" && value.toLowerCase() !== email) {
          problems.push({
            isValid: false,
            message: `email ${value} differs from the input id`,
            error: "INVALID_EMAIL",
            name,
          });
        }
      }
      if (problems.length > 0) {
        return validationError(notValidMessage(problems), { context: { id: [input.id] } });
      }
    }
    const startedAt = new Date().toISOString();
    const results = inputs.map((input) => this.writeContact(input));
    return {
      status: 200,
      body: { status: "COMPLETE", results, startedAt, completedAt: new Date().toISOString() },
    };
  }

  private writeContact(input: UpsertInput): Record<string, unknown> {
    const email = input.id.toLowerCase();
    const now = new Date().toISOString();
    let contact = this.contactsByEmail.get(email);
    const created = contact === undefined;
    if (!contact) {
      const id = String(this.nextContactId++);
      contact = {
        id,
        email,
        properties: { hs_object_id: id, email, createdate: now },
        createdAt: now,
        updatedAt: now,
        writes: 0,
      };
      this.contactsByEmail.set(email, contact);
      this.contactsById.set(id, contact);
    }
    for (const [name, value] of Object.entries(input.properties)) {
      if (name === "email") continue;
      if (value === "") delete contact.properties[name];
      else contact.properties[name] = value as string;
    }
    contact.updatedAt = now;
    contact.properties.lastmodifieddate = now;
    contact.writes += 1;
    return {
      id: contact.id,
      new: created,
      properties: { ...contact.properties },
      createdAt: contact.createdAt,
      updatedAt: contact.updatedAt,
      archived: false,
      ...(input.traceId ? { objectWriteTraceId: input.traceId } : {}),
    };
  }

  // ---- associations -------------------------------------------------------------------------------------------

  createCartContactAssociations(body: unknown): FakeResponse {
    if (!isRecord(body) || !Array.isArray(body.inputs)) {
      return validationError("Invalid input JSON: expected an object with an `inputs` array");
    }
    const raw: unknown[] = body.inputs;
    if (raw.length === 0) return validationError("inputs must not be empty");
    if (raw.length > MAX_ASSOCIATION_INPUTS) {
      return validationError(
        `Batch input cannot contain more than ${MAX_ASSOCIATION_INPUTS} inputs (got ${raw.length})`,
      );
    }
    const pairs: { cartId: string; contactId: string }[] = [];
    for (const [i, item] of raw.entries()) {
      const from = isRecord(item) && isRecord(item.from) ? item.from.id : undefined;
      const to = isRecord(item) && isRecord(item.to) ? item.to.id : undefined;
      const types: unknown = isRecord(item) ? item.types : undefined;
      const validId = (v: unknown): v is string | number =>
        (typeof v === "string" && v !== "") || typeof v === "number";
      if (!validId(from) || !validId(to) || !Array.isArray(types) || types.length === 0) {
        return validationError(`Invalid input at inputs[${i}]: from.id, to.id and types are required`);
      }
      for (const t of types as unknown[]) {
        if (
          !isRecord(t) ||
          t.associationCategory !== "HUBSPOT_DEFINED" ||
          t.associationTypeId !== CART_TO_CONTACT_TYPE_ID
        ) {
          return validationError(
            `Invalid association type at inputs[${i}]: ${JSON.stringify(t)}; cart → contact is HUBSPOT_DEFINED ${CART_TO_CONTACT_TYPE_ID}`,
          );
        }
      }
      pairs.push({ cartId: String(from), contactId: String(to) });
    }
    const startedAt = new Date().toISOString();
    const results: Record<string, unknown>[] = [];
    const errors: Record<string, unknown>[] = [];
    for (const { cartId, contactId } of pairs) {
      const cartKey = this.cartKeyOf(cartId);
      const rejectedAs = this.rejectedAssociations.has(cartId) ? cartId : cartKey;
      const rejection = rejectedAs === undefined ? undefined : this.rejectedAssociations.get(rejectedAs);
      if (rejectedAs !== undefined && rejection !== undefined) {
        if (--rejection.remaining <= 0) this.rejectedAssociations.delete(rejectedAs);
        const message = rejection.message ?? `No ${CARTS_TYPE_ID} object with id ${cartId} exists`;
        errors.push(this.associationError(message, { fromObjectId: [cartId] }, rejection.category));
        continue;
      }
      if (!this.hasCartId(cartId)) {
        errors.push(
          this.associationError(`No ${CARTS_TYPE_ID} object with id ${cartId} exists`, {
            fromObjectId: [cartId],
          }),
        );
        continue;
      }
      if (!this.contactsById.has(contactId)) {
        errors.push(
          this.associationError(`No ${CONTACTS_TYPE_ID} object with id ${contactId} exists`, {
            toObjectId: [contactId],
          }),
        );
        continue;
      }
      const pairKey = `${cartId}:${contactId}`;
      if (!this.associationsByPair.has(pairKey)) {
        this.associationsByPair.set(pairKey, { cartId, contactId, typeId: CART_TO_CONTACT_TYPE_ID });
      }
      results.push({
        fromObjectTypeId: CARTS_TYPE_ID,
        fromObjectId: Number(cartId),
        toObjectTypeId: CONTACTS_TYPE_ID,
        toObjectId: Number(contactId),
        labels: [],
      });
    }
    const completedAt = new Date().toISOString();
    if (errors.length === 0)
      return { status: 201, body: { status: "COMPLETE", results, startedAt, completedAt } };
    return {
      status: 207,
      body: { status: "COMPLETE", results, numErrors: errors.length, errors, startedAt, completedAt },
    };
  }

  private associationError(
    message: string,
    context: Record<string, string[]>,
    category = "VALIDATION_ERROR",
  ): Record<string, unknown> {
    return {
      status: "error",
      category,
      ...(category === "VALIDATION_ERROR" ? { subCategory: "crm.associations.INVALID_OBJECT_IDS" } : {}),
      message,
      context,
    };
  }
}
