/**
 * Routing and test controls for the fake portal's line items, hooked into hubspot-server.ts.
 * The rules themselves live in hubspot-line-items.ts.
 */
import type { FakeResponse } from "./hubspot-batch.ts";
import type { PropertyDefinition } from "./hubspot-properties.ts";
import {
  defaultLineItemProperties,
  FakeLineItemStore,
  lineItemKeyPropertyDefinition,
  type FakeLineItem,
} from "./hubspot-line-items.ts";
import { missingScopes } from "./hubspot-server.ts";

/** What a test can see and steer of the fake's line items. */
export interface FakeLineItems {
  /** Live (not archived) line items by their key ("<cart key>:<variant>"). */
  lineItems(): Map<string, FakeLineItem>;
  /** Every line item ever created, archived ones included. */
  allLineItems(): FakeLineItem[];
  /** Live line items associated with the cart of this HubSpot id. */
  lineItemsOfCart(cartId: string): FakeLineItem[];
  /** Upserts containing this line item key get a per-input error (207 with trace ids). */
  rejectLineItemKey(key: string, message?: string): void;
  /** Undoes rejectLineItemKey. */
  acceptLineItemKey(key: string): void;
  addLineItemProperty(def: PropertyDefinition): void;
}

const LINE_ITEM_TYPES = "(?:line_items|line_item|0-8)";
const CART_TYPES = "(?:carts|cart|0-142)";
const ROUTES = {
  upsert: new RegExp(`^/crm/v3/objects/${LINE_ITEM_TYPES}/batch/upsert$`),
  archive: new RegExp(`^/crm/v3/objects/${LINE_ITEM_TYPES}/batch/archive$`),
  associate: new RegExp(`^/crm/v4/associations/${LINE_ITEM_TYPES}/${CART_TYPES}/batch/associate/default$`),
  properties: new RegExp(`^/crm/v3/properties/${LINE_ITEM_TYPES}$`),
  propertyGroups: new RegExp(`^/crm/v3/properties/${LINE_ITEM_TYPES}/groups$`),
  property: new RegExp(`^/crm/v3/properties/${LINE_ITEM_TYPES}/([^/]+)$`),
};

export function setUpLineItems(
  withKeyProperty: boolean,
  hasCartId: (id: string) => boolean,
): { store: FakeLineItemStore; api: FakeLineItems } {
  const defs = defaultLineItemProperties();
  if (withKeyProperty) defs.push(lineItemKeyPropertyDefinition());
  const store = new FakeLineItemStore(defs, hasCartId);
  return {
    store,
    api: {
      lineItems: () => store.byKey,
      allLineItems: () => store.all(),
      lineItemsOfCart: (cartId) => store.forCart(cartId),
      rejectLineItemKey: (key, message = `Line item ${key} rejected by the fake HubSpot`) =>
        store.rejectKey(key, message),
      acceptLineItemKey: (key) => store.acceptKey(key),
      addLineItemProperty: (def) => store.addProperty(def),
    },
  };
}

/** The answer for a line item route, or undefined when `path` is not one. */
export function lineItemRoute(
  store: FakeLineItemStore,
  method: string,
  path: string,
  body: unknown,
  scoped: boolean,
): FakeResponse | undefined {
  const isWrite = ROUTES.upsert.test(path) || ROUTES.archive.test(path) || ROUTES.associate.test(path);
  // HubSpot's default line item property group is the only one this portal has.
  if (method === "GET" && ROUTES.propertyGroups.test(path)) {
    if (!scoped) return missingScopes("crm.objects.line_items.read");
    return {
      status: 200,
      body: { results: [{ name: "lineiteminformation", label: "Line item information", displayOrder: -1 }] },
    };
  }
  const property = ROUTES.property.exec(path);
  const isProperties = ROUTES.properties.test(path) || property !== null;
  if (!isWrite && !isProperties) return undefined;
  if (!scoped)
    return missingScopes(
      isProperties && method === "POST" ? "crm.schemas.line_items.write" : "crm.objects.line_items.write",
    );
  if (method === "POST" && ROUTES.upsert.test(path)) return store.upsert(body);
  if (method === "POST" && ROUTES.archive.test(path)) return store.archive(body);
  if (method === "POST" && ROUTES.associate.test(path)) return store.associateDefault(body);
  if (ROUTES.properties.test(path)) {
    if (method === "GET") return store.listProperties();
    if (method === "POST") return store.createProperty(body);
  }
  if (method === "GET" && property?.[1] !== undefined)
    return store.getProperty(decodeURIComponent(property[1]));
  return undefined;
}
