/**
 * The fake portal's line items (object 0-8, path `line_items`), their property schema, batch upsert by a
 * unique property, batch archive and the v4 default association line item → cart
 * (see ../shared/reference/hubspot.md §4 and §8). Each operation takes a parsed JSON body and returns
 * `{ status, body }` as HubSpot would answer.
 *
 * Rules enforced: the idProperty must exist and be unique (400 otherwise); ≤ 100 inputs; no duplicate ids
 * (400); unknown properties and invalid values fail the input (207 with trace ids, else a whole-batch 400);
 * "line items belong to one single parent object": associating a line item already associated with another
 * cart is refused for that input (207); archive answers 204 and is idempotent.
 */
import {
  parsePropertyCreate,
  serializeProperty,
  validatePropertyValue,
  type PropertyDefinition,
  type PropertyValidationResult,
} from "./hubspot-properties.ts";
import {
  duplicateIdsError,
  duplicates,
  errorBody,
  isRecord,
  MAX_BATCH_INPUTS,
  notValidMessage,
  parseUpsertInputs,
  validationError,
  type FakeResponse,
  type UpsertInput,
} from "./hubspot-batch.ts";

export const LINE_ITEMS_TYPE_ID = "0-8";
export const LINE_ITEM_PROPERTY_GROUP = {
  name: "lineiteminformation",
  label: "Line item information",
} as const;
export const LINE_ITEM_KEY_PROPERTY = "shopify_line_item_key";
/** HUBSPOT_DEFINED line item → cart (the default association). */
export const LINE_ITEM_TO_CART_TYPE_ID = 591;

export interface FakeLineItem {
  id: string;
  /** The id-property value it was created with ("<cart key>:<variant>"). */
  key: string;
  properties: Record<string, string>;
  /** HubSpot id of the one cart it is associated with, if any. */
  cartId: string | undefined;
  archived: boolean;
  writes: number;
}

const CURRENCIES = "USD EUR GBP CAD AUD JPY CHF NZD SEK NOK DKK PLN MXN BRL INR".split(" ");

export function defaultLineItemProperties(): PropertyDefinition[] {
  const p = (name: string, type: PropertyDefinition["type"], extra: Partial<PropertyDefinition> = {}) => ({
    name,
    type,
    groupName: LINE_ITEM_PROPERTY_GROUP.name,
    ...extra,
  });
  return [
    p("name", "string", { label: "Name" }),
    p("quantity", "number", { label: "Quantity" }),
    p("price", "number", { label: "Unit price" }),
    p("hs_sku", "string", { label: "SKU" }),
    p("discount", "number", { label: "Unit discount" }),
    p("hs_line_item_currency_code", "enumeration", {
      label: "Currency",
      options: CURRENCIES.map((c) => ({ value: c, label: c })),
    }),
    p("hs_product_id", "number", { label: "Product ID" }),
    p("hs_object_id", "number", { label: "Record ID", readOnlyValue: true }),
    p("hs_createdate", "datetime", { label: "Create Date", readOnlyValue: true }),
    p("hs_lastmodifieddate", "datetime", { label: "Last Modified Date", readOnlyValue: true }),
  ];
}

export function lineItemKeyPropertyDefinition(): PropertyDefinition {
  return {
    name: LINE_ITEM_KEY_PROPERTY,
    type: "string",
    fieldType: "text",
    label: "Shopify line item key",
    hasUniqueValue: true,
    groupName: LINE_ITEM_PROPERTY_GROUP.name,
  };
}

export class FakeLineItemStore {
  readonly properties = new Map<string, PropertyDefinition>();
  /** Live (not archived) line items by the id-property value they were created with. */
  readonly byKey = new Map<string, FakeLineItem>();
  private readonly byId = new Map<string, FakeLineItem>();
  private readonly uniqueIndex = new Map<string, Map<string, FakeLineItem>>();
  private readonly rejectedKeys = new Map<string, string>();
  /** Line item ids from their own range, so swapping them with cart or contact ids is caught. */
  private nextId = 50_000_000_001;
  partialUpserts = true;

  private readonly hasCartId: (id: string) => boolean;

  constructor(defs: PropertyDefinition[], hasCartId: (id: string) => boolean) {
    this.hasCartId = hasCartId;
    for (const def of defs) this.addProperty(def);
  }

  addProperty(def: PropertyDefinition): void {
    this.properties.set(def.name, { ...def });
    if (def.hasUniqueValue === true && !this.uniqueIndex.has(def.name)) {
      const index = new Map<string, FakeLineItem>();
      for (const item of this.byId.values())
        if (!item.archived && item.properties[def.name] !== undefined)
          index.set(item.properties[def.name] as string, item);
      this.uniqueIndex.set(def.name, index);
    }
  }

  rejectKey(key: string, message: string): void {
    this.rejectedKeys.set(key, message);
  }

  acceptKey(key: string): void {
    this.rejectedKeys.delete(key);
  }

  /** Live line items associated with the cart of this HubSpot id. */
  forCart(cartId: string): FakeLineItem[] {
    return [...this.byKey.values()].filter((i) => i.cartId === cartId);
  }

  /** Every line item ever created, archived ones included. */
  all(): FakeLineItem[] {
    return [...this.byId.values()];
  }

  // ---- properties -------------------------------------------------------------------------------------------

  listProperties(): FakeResponse {
    return {
      status: 200,
      body: { results: [...this.properties.values()].map((d, i) => serializeProperty(d, i)) },
    };
  }

  getProperty(name: string): FakeResponse {
    const def = this.properties.get(name);
    if (!def)
      return {
        status: 404,
        body: errorBody("OBJECT_NOT_FOUND", `Unable to find property ${name} on ${LINE_ITEMS_TYPE_ID}`),
      };
    return { status: 200, body: serializeProperty(def, [...this.properties.keys()].indexOf(name)) };
  }

  createProperty(body: unknown): FakeResponse {
    const parsed = parsePropertyCreate(body);
    if ("problems" in parsed)
      return validationError(`Invalid property definition: ${parsed.problems.join("; ")}`);
    const { def } = parsed;
    if (this.properties.has(def.name))
      return { status: 409, body: errorBody("OBJECT_ALREADY_EXISTS", `Property ${def.name} already exists`) };
    if (def.groupName !== LINE_ITEM_PROPERTY_GROUP.name)
      return validationError(`Property group ${def.groupName ?? ""} does not exist on ${LINE_ITEMS_TYPE_ID}`);
    this.addProperty(def);
    return { status: 201, body: serializeProperty(def, this.properties.size - 1) };
  }

  // ---- upsert -------------------------------------------------------------------------------------------------

  upsert(body: unknown): FakeResponse {
    const inputs = parseUpsertInputs(body);
    if (!Array.isArray(inputs)) return inputs;
    const dupIds = duplicates(inputs.map((i) => i.id));
    if (dupIds.length > 0) return duplicateIdsError(dupIds);
    for (const name of new Set(inputs.map((i) => i.idProperty ?? "hs_object_id"))) {
      const def = this.properties.get(name);
      if (!def)
        return validationError(
          `Unable to perform update/upsert by non-existent ${LINE_ITEMS_TYPE_ID} property ${name}`,
          { subCategory: "PROPERTY_DOESNT_EXIST" },
        );
      if (def.hasUniqueValue !== true)
        return validationError(
          `Unable to perform update/upsert by non-unique ${LINE_ITEMS_TYPE_ID} property ${name}`,
        );
    }
    if (isRecord(body) && (body["associations"] !== undefined || hasInputAssociations(body)))
      return validationError("Invalid input JSON: batch upsert inputs take no associations");
    const traced = this.partialUpserts && inputs.every((i) => i.traceId !== undefined);
    const failures = new Map<UpsertInput, string>();
    for (const input of inputs) {
      const problem = this.inputProblem(input);
      if (problem !== null) failures.set(input, problem);
    }
    if (failures.size > 0 && !traced) {
      const [first] = failures.values();
      return validationError(first ?? "invalid input");
    }
    const startedAt = new Date().toISOString();
    const results = inputs.filter((i) => !failures.has(i)).map((i) => this.write(i));
    const completedAt = new Date().toISOString();
    if (failures.size === 0)
      return { status: 200, body: { status: "COMPLETE", results, startedAt, completedAt } };
    const errors = [...failures].map(([input, message]) => ({
      status: "error",
      category: "VALIDATION_ERROR",
      message,
      context: { objectWriteTraceId: [input.traceId] },
      errors: [],
      links: {},
    }));
    return {
      status: 207,
      body: { status: "COMPLETE", results, numErrors: errors.length, errors, startedAt, completedAt },
    };
  }

  private inputProblem(input: UpsertInput): string | null {
    const rejected = this.rejectedKeys.get(input.id);
    if (rejected !== undefined) return rejected;
    const problems: PropertyValidationResult[] = [];
    for (const [name, value] of Object.entries(input.properties)) {
      const def = this.properties.get(name);
      if (!def) {
        problems.push({
          isValid: false,
          message: `Property "${name}" does not exist`,
          error: "PROPERTY_DOESNT_EXIST",
          name,
        });
        continue;
      }
      const problem = validatePropertyValue(def, value);
      if (problem) problems.push(problem);
    }
    return problems.length > 0 ? notValidMessage(problems) : null;
  }

  private write(input: UpsertInput): Record<string, unknown> {
    const idProperty = input.idProperty ?? "hs_object_id";
    const index = this.uniqueIndex.get(idProperty);
    let item = index?.get(input.id);
    const created = item === undefined;
    const now = new Date().toISOString();
    if (!item) {
      const id = String(this.nextId++);
      item = {
        id,
        key: input.id,
        properties: { hs_object_id: id, hs_createdate: now },
        cartId: undefined,
        archived: false,
        writes: 0,
      };
      this.byId.set(id, item);
      this.byKey.set(input.id, item);
      item.properties[idProperty] = input.id;
      index?.set(input.id, item);
    }
    for (const [name, value] of Object.entries(input.properties)) {
      if (value === "") delete item.properties[name];
      else item.properties[name] = value as string;
    }
    item.properties["hs_lastmodifieddate"] = now;
    item.writes += 1;
    return {
      id: item.id,
      properties: { ...item.properties },
      createdAt: item.properties["hs_createdate"],
      updatedAt: now,
      archived: false,
      new: created,
      ...(input.traceId ? { objectWriteTraceId: input.traceId } : {}),
    };
  }

  // ---- archive ------------------------------------------------------------------------------------------------

  archive(body: unknown): FakeResponse {
    const ids = parseIdInputs(body);
    if (!Array.isArray(ids)) return ids;
    for (const id of ids) {
      const item = this.byId.get(id);
      if (!item || item.archived) continue;
      item.archived = true;
      this.byKey.delete(item.key);
      for (const [name, index] of this.uniqueIndex) {
        const value = item.properties[name];
        if (value !== undefined && index.get(value) === item) index.delete(value);
      }
    }
    return { status: 204, body: undefined };
  }

  // ---- associations -------------------------------------------------------------------------------------------

  /** `POST /crm/v4/associations/line_items/carts/batch/associate/default`. */
  associateDefault(body: unknown): FakeResponse {
    if (!isRecord(body) || !Array.isArray(body["inputs"]))
      return validationError("Invalid input JSON: expected an object with an `inputs` array");
    const raw: unknown[] = body["inputs"];
    if (raw.length === 0) return validationError("inputs must not be empty");
    if (raw.length > 2000)
      return validationError(`Batch input cannot contain more than 2000 inputs (got ${raw.length})`);
    const pairs: { itemId: string; cartId: string }[] = [];
    for (const [i, entry] of raw.entries()) {
      const from = isRecord(entry) && isRecord(entry["from"]) ? entry["from"]["id"] : undefined;
      const to = isRecord(entry) && isRecord(entry["to"]) ? entry["to"]["id"] : undefined;
      if (!validId(from) || !validId(to))
        return validationError(`Invalid input at inputs[${i}]: from.id and to.id are required`);
      pairs.push({ itemId: String(from), cartId: String(to) });
    }
    const results: Record<string, unknown>[] = [];
    const errors: Record<string, unknown>[] = [];
    for (const { itemId, cartId } of pairs) {
      const item = this.byId.get(itemId);
      if (!item || item.archived) {
        errors.push(
          associationError(`No ${LINE_ITEMS_TYPE_ID} object with id ${itemId} exists`, {
            fromObjectId: [itemId],
          }),
        );
        continue;
      }
      if (!this.hasCartId(cartId)) {
        errors.push(associationError(`No 0-142 object with id ${cartId} exists`, { toObjectId: [cartId] }));
        continue;
      }
      if (item.cartId !== undefined && item.cartId !== cartId) {
        errors.push(
          associationError(
            `Line item ${itemId} is already associated with another object; line items belong to one single parent object`,
            {
              fromObjectId: [itemId],
            },
          ),
        );
        continue;
      }
      item.cartId = cartId;
      results.push({
        from: { id: itemId },
        to: { id: cartId },
        associationSpec: {
          associationCategory: "HUBSPOT_DEFINED",
          associationTypeId: LINE_ITEM_TO_CART_TYPE_ID,
        },
      });
    }
    const at = new Date().toISOString();
    if (errors.length === 0)
      return { status: 200, body: { status: "COMPLETE", results, startedAt: at, completedAt: at } };
    return {
      status: 207,
      body: { status: "COMPLETE", results, numErrors: errors.length, errors, startedAt: at, completedAt: at },
    };
  }
}

function hasInputAssociations(body: Record<string, unknown>): boolean {
  const inputs = body["inputs"];
  return Array.isArray(inputs) && inputs.some((i) => isRecord(i) && i["associations"] !== undefined);
}

function validId(v: unknown): v is string | number {
  return (typeof v === "string" && v !== "") || typeof v === "number";
}

function parseIdInputs(body: unknown): string[] | FakeResponse {
  if (!isRecord(body) || !Array.isArray(body["inputs"]))
    return validationError("Invalid input JSON: expected an object with an `inputs` array");
  const raw: unknown[] = body["inputs"];
  if (raw.length === 0) return validationError("inputs must not be empty");
  if (raw.length > MAX_BATCH_INPUTS)
    return validationError(
      `Batch input cannot contain more than ${MAX_BATCH_INPUTS} inputs (got ${raw.length})`,
    );
  const ids: string[] = [];
  for (const [i, entry] of raw.entries()) {
    const id = isRecord(entry) ? entry["id"] : undefined;
    if (!validId(id)) return validationError(`Invalid input at inputs[${i}]: \`id\` is required`);
    ids.push(String(id));
  }
  return ids;
}

function associationError(message: string, context: Record<string, string[]>): Record<string, unknown> {
  return {
    status: "error",
    category: "VALIDATION_ERROR",
    subCategory: "crm.associations.INVALID_OBJECT_IDS",
    message,
    context,
  };
}
