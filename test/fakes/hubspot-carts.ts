/**
 * The fake portal's carts and cart property schema, and the upsert rules HubSpot enforces on them
 * (see ../shared/reference/hubspot.md §1-§2). Each operation takes a parsed JSON body and returns
 * `{ status, body }` as HubSpot would answer. Records are indexed by Maps, so a write costs O(inputs).
 */
import {
  CART_PROPERTY_GROUP,
  parsePropertyCreate,
  serializeProperty,
  validatePropertyValue,
} from "./hubspot-properties.ts";
import type { PropertyDefinition, PropertyValidationResult } from "./hubspot-properties.ts";
import {
  duplicateIdsError,
  duplicates,
  errorBody,
  notValidMessage,
  parseUpsertInputs,
  validationError,
} from "./hubspot-batch.ts";
import type { FakeResponse, UpsertInput } from "./hubspot-batch.ts";

export interface FakeCart {
  /** hs_object_id, a numeric string. */
  id: string;
  /** The id-property value the cart was created with (e.g. "shop.myshopify.com:token"). */
  key: string;
  properties: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  /** Number of upserts that wrote this cart (creation included). */
  writes: number;
}

export const CARTS_TYPE_ID = "0-142";
export const MAX_UNIQUE_PROPERTIES = 10;

export class FakeCartStore {
  readonly cartProperties = new Map<string, PropertyDefinition>();
  /** Carts by the id-property value they were created with. */
  readonly cartsByKey = new Map<string, FakeCart>();
  private readonly cartsById = new Map<string, FakeCart>();
  /** property name → value → cart, for every property with hasUniqueValue. */
  private readonly uniqueIndex = new Map<string, Map<string, FakeCart>>();
  private readonly rejectedCartIds = new Map<string, string>();
  /** Properties the portal requires on every cart (enforced only through 2026-09+ paths). */
  private readonly requiredProperties = new Set<string>();
  /** Cart and contact ids come from distinct ranges, so swapping them is caught. */
  private nextCartId = 30_000_000_001;

  constructor(cartProperties: PropertyDefinition[]) {
    for (const def of cartProperties) this.addCartProperty(def);
  }

  addCartProperty(def: PropertyDefinition): void {
    this.cartProperties.set(def.name, { ...def });
    if (def.hasUniqueValue === true && !this.uniqueIndex.has(def.name)) {
      const index = new Map<string, FakeCart>();
      for (const cart of this.cartsById.values()) {
        const value = cart.properties[def.name];
        if (value !== undefined) index.set(value, cart);
      }
      this.uniqueIndex.set(def.name, index);
    }
  }

  /** When false, a bad input fails the whole batch with 400 even with trace ids (no 207 for upserts). */
  partialUpserts = true;

  acceptCartId(id: string): void {
    this.rejectedCartIds.delete(id);
  }

  rejectCartId(id: string, message: string): void {
    this.rejectedCartIds.set(id, message);
  }

  requireCartProperty(name: string, required = true): void {
    if (required) this.requiredProperties.add(name);
    else this.requiredProperties.delete(name);
  }

  hasCartId(id: string): boolean {
    return this.cartsById.has(id);
  }

  keyOfCartId(id: string): string | undefined {
    return this.cartsById.get(id)?.key;
  }

  // ---- properties -------------------------------------------------------------------------------------------

  listCartProperties(): FakeResponse {
    return {
      status: 200,
      body: { results: [...this.cartProperties.values()].map((d, i) => serializeProperty(d, i)) },
    };
  }

  getCartProperty(name: string): FakeResponse {
    const def = this.cartProperties.get(name);
    if (!def)
      return {
        status: 404,
        body: errorBody("OBJECT_NOT_FOUND", `Unable to find property ${name} on ${CARTS_TYPE_ID}`),
      };
    return { status: 200, body: serializeProperty(def, [...this.cartProperties.keys()].indexOf(name)) };
  }

  listCartPropertyGroups(): FakeResponse {
    return { status: 200, body: { results: [{ ...CART_PROPERTY_GROUP, displayOrder: 0, archived: false }] } };
  }

  createCartProperty(body: unknown): FakeResponse {
    const parsed = parsePropertyCreate(body);
    if ("problems" in parsed)
      return validationError(`Invalid property definition: ${parsed.problems.join("; ")}`);
    const { def } = parsed;
    if (this.cartProperties.has(def.name)) {
      return { status: 409, body: errorBody("OBJECT_ALREADY_EXISTS", `Property ${def.name} already exists`) };
    }
    if (def.groupName !== CART_PROPERTY_GROUP.name) {
      return validationError(`Property group ${def.groupName ?? ""} does not exist on ${CARTS_TYPE_ID}`);
    }
    const uniqueCount = [...this.cartProperties.values()].filter((d) => d.hasUniqueValue === true).length;
    if (def.hasUniqueValue === true && uniqueCount >= MAX_UNIQUE_PROPERTIES) {
      return validationError(
        `Cannot create more than ${MAX_UNIQUE_PROPERTIES} unique value properties on ${CARTS_TYPE_ID}`,
      );
    }
    this.addCartProperty(def);
    return { status: 201, body: serializeProperty(def, this.cartProperties.size - 1) };
  }

  // ---- carts --------------------------------------------------------------------------------------------------

  getCart(id: string, idProperty: string | null): FakeResponse {
    const cart = idProperty ? this.uniqueIndex.get(idProperty)?.get(id) : this.cartsById.get(id);
    if (!cart)
      return {
        status: 404,
        body: errorBody("OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric."),
      };
    return { status: 200, body: this.cartResult(cart) };
  }

  private cartResult(cart: FakeCart): Record<string, unknown> {
    return {
      id: cart.id,
      properties: { ...cart.properties },
      createdAt: cart.createdAt,
      updatedAt: cart.updatedAt,
      archived: false,
    };
  }

  upsertCarts(body: unknown, rules: { enforceRequired?: boolean } = {}): FakeResponse {
    const inputs = parseUpsertInputs(body);
    if (!Array.isArray(inputs)) return inputs;
    const dupIds = duplicates(inputs.map((i) => i.id));
    if (dupIds.length > 0) return duplicateIdsError(dupIds);
    for (const name of new Set(inputs.map((i) => i.idProperty ?? "hs_object_id"))) {
      const def = this.cartProperties.get(name);
      if (!def) {
        return validationError(
          `Unable to perform update/upsert by non-existent ${CARTS_TYPE_ID} property ${name}`,
          {
            subCategory: "PROPERTY_DOESNT_EXIST",
          },
        );
      }
      if (def.hasUniqueValue !== true) {
        return validationError(
          `Unable to perform update/upsert by non-unique ${CARTS_TYPE_ID} property ${name}`,
        );
      }
    }
    const traced = this.partialUpserts && inputs.every((i) => i.traceId !== undefined);
    if (traced) {
      const dupTraces = duplicates(inputs.map((i) => i.traceId ?? ""));
      if (dupTraces.length > 0) {
        return validationError(
          `Duplicate objectWriteTraceId values in batch input: [${dupTraces.join(", ")}]`,
        );
      }
    }

    const failures = new Map<UpsertInput, string>();
    for (const input of inputs) {
      const message = this.cartInputProblem(input, rules.enforceRequired === true);
      if (message !== null) failures.set(input, message);
    }
    if (failures.size > 0 && !traced) {
      const [first] = failures.values();
      return validationError(first ?? "invalid input", {
        errors: [...failures].map(([input, message]) => ({ message, context: { id: [input.id] } })),
      });
    }

    const startedAt = new Date().toISOString();
    const results = inputs.filter((i) => !failures.has(i)).map((input) => this.writeCart(input));
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

  /** The reason HubSpot would refuse this one input, or null. */
  private cartInputProblem(input: UpsertInput, enforceRequired: boolean): string | null {
    const rejected = this.rejectedCartIds.get(input.id);
    if (rejected !== undefined) return rejected;
    const idProperty = input.idProperty ?? "hs_object_id";
    const idDef = this.cartProperties.get(idProperty);
    const problems: PropertyValidationResult[] = [];
    const idProblem = idDef ? validatePropertyValue(idDef, input.id) : null;
    if (idProblem) problems.push(idProblem);
    const existing = this.uniqueIndex.get(idProperty)?.get(input.id);
    for (const [name, value] of Object.entries(input.properties)) {
      const def = this.cartProperties.get(name);
      if (!def) {
        const message = `Property "${name}" does not exist`;
        problems.push({ isValid: false, message, error: "PROPERTY_DOESNT_EXIST", name });
        continue;
      }
      const problem = validatePropertyValue(def, value);
      if (problem) {
        problems.push(problem);
      } else if (name === idProperty && value !== input.id) {
        const message = `${name} in properties (${String(value)}) differs from the input id (${input.id})`;
        problems.push({ isValid: false, message, error: "INVALID_ID_PROPERTY_VALUE", name });
      } else if (def.hasUniqueValue === true && value !== "") {
        const owner = this.uniqueIndex.get(name)?.get(value as string);
        if (owner && owner !== existing) {
          const message = `A cart with ${name} ${String(value)} already exists (id ${owner.id})`;
          problems.push({ isValid: false, message, error: "DUPLICATE_UNIQUE_VALUE", name });
        }
      }
    }
    if (enforceRequired) problems.push(...this.missingRequired(input, existing));
    return problems.length > 0 ? notValidMessage(problems) : null;
  }

  /**
   * 2026-09 rule: after the write, every required property must have a value — a create must carry it, an
   * update must not clear it, and an existing cart without it cannot be updated until it is given.
   */
  private missingRequired(input: UpsertInput, existing: FakeCart | undefined): PropertyValidationResult[] {
    const missing: PropertyValidationResult[] = [];
    for (const name of this.requiredProperties) {
      const given = input.properties[name];
      const after = given === undefined ? existing?.properties[name] : given;
      if (after === undefined || after === "") {
        const message = `The property ${name} is required on ${CARTS_TYPE_ID} and was not provided`;
        missing.push({ isValid: false, message, error: "REQUIRED_PROPERTY_MISSING", name });
      }
    }
    return missing;
  }

  private setCartProperty(cart: FakeCart, name: string, value: string): void {
    const index = this.uniqueIndex.get(name);
    const old = cart.properties[name];
    if (index && old !== undefined && index.get(old) === cart) index.delete(old);
    if (value === "") {
      delete cart.properties[name];
      if (name === "hs_total_price") delete cart.properties.hs_homecurrency_amount;
      return;
    }
    cart.properties[name] = value;
    index?.set(value, cart);
    if (name === "hs_total_price") cart.properties.hs_homecurrency_amount = value;
  }

  private writeCart(input: UpsertInput): Record<string, unknown> {
    const idProperty = input.idProperty ?? "hs_object_id";
    const now = new Date().toISOString();
    let cart = this.uniqueIndex.get(idProperty)?.get(input.id);
    const created = cart === undefined;
    if (!cart) {
      const id = String(this.nextCartId++);
      cart = {
        id,
        key: input.id,
        properties: { hs_object_id: id, hs_createdate: now },
        createdAt: now,
        updatedAt: now,
        writes: 0,
      };
      this.cartsById.set(id, cart);
      this.cartsByKey.set(input.id, cart);
      this.setCartProperty(cart, idProperty, input.id);
    }
    for (const [name, value] of Object.entries(input.properties))
      this.setCartProperty(cart, name, value as string);
    cart.updatedAt = now;
    cart.properties.hs_lastmodifieddate = now;
    cart.writes += 1;
    return {
      ...this.cartResult(cart),
      new: created,
      ...(input.traceId ? { objectWriteTraceId: input.traceId } : {}),
    };
  }
}
