import { HubSpotRequestRefusedError } from "./errors.ts";
import { hubspotPaths, type HubSpotObjectType } from "./paths.ts";
import { readBatch, readPropertyDefinitions, readPropertyGroupNames } from "./read.ts";
import { createTransport } from "./transport.ts";
import type {
  AssociationInput,
  BatchOutcome,
  LineItemAssociation,
  PropertyDefinition,
  RateLimitInfo,
  UpsertInput,
} from "./types.ts";

/**
 * HubSpot over one keep-alive undici pool. Every method makes exactly one attempt and either returns the
 * answer or throws a classified HubSpotError; retries belong to the caller (the flusher).
 */
export interface HubSpotClient {
  upsertCarts(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  upsertContacts(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  associateCartsWithContacts(inputs: readonly AssociationInput[]): Promise<BatchOutcome>;
  listCartProperties(): Promise<PropertyDefinition[]>;
  createCartProperty(def: PropertyCreate): Promise<"created" | "exists">;
  listCartPropertyGroups(): Promise<string[]>;
  /** The same three for any object type (line items' key property, say). */
  listProperties(type: HubSpotObjectType): Promise<PropertyDefinition[]>;
  createProperty(type: HubSpotObjectType, def: PropertyCreate): Promise<"created" | "exists">;
  listPropertyGroups(type: HubSpotObjectType): Promise<string[]>;
  upsertLineItems(inputs: readonly UpsertInput[]): Promise<BatchOutcome>;
  /** HubSpot's default line item → cart association (no type needed). */
  associateLineItemsWithCarts(inputs: readonly LineItemAssociation[]): Promise<BatchOutcome>;
  /** Archives line items by HubSpot id (204; archiving an archived one is a no-op). */
  archiveLineItems(ids: readonly string[]): Promise<{ rateLimit: RateLimitInfo | undefined }>;
  listLineItemProperties(): Promise<PropertyDefinition[]>;
  createLineItemProperty(def: PropertyCreate): Promise<"created" | "exists">;
  close(): Promise<void>;
}

export interface PropertyCreate {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly fieldType: string;
  readonly groupName: string;
  readonly hasUniqueValue: boolean;
  readonly description?: string;
}

export interface HubSpotClientOptions {
  readonly baseUrl: string;
  readonly accessToken: string;
  readonly connections?: number;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  /** `v3` (default) or a HubSpot date version such as `2026-09`: see paths.ts. */
  readonly apiVersion?: string;
}

const CART_TO_CONTACT = 586;

export function createHubSpotClient(opts: HubSpotClientOptions): HubSpotClient {
  const { call, close } = createTransport(opts);
  const paths = hubspotPaths(opts.apiVersion);

  async function batchUpsert(
    objectType: HubSpotObjectType,
    inputs: readonly UpsertInput[],
  ): Promise<BatchOutcome> {
    const answer = await call("POST", paths.batchUpsert(objectType), { inputs });
    return readBatch(answer, inputs[0]?.idProperty);
  }

  const client: HubSpotClient = {
    upsertCarts: (inputs) => batchUpsert("carts", inputs),
    upsertContacts: (inputs) => batchUpsert("contacts", inputs),

    async associateCartsWithContacts(inputs) {
      const answer = await call("POST", paths.associationsBatchCreate("carts", "contacts"), {
        inputs: inputs.map((a) => ({
          from: { id: a.cartId },
          to: { id: a.contactId },
          types: [{ associationCategory: "HUBSPOT_DEFINED", associationTypeId: CART_TO_CONTACT }],
        })),
      });
      return readBatch(answer);
    },

    upsertLineItems: (inputs) => batchUpsert("line_items", inputs),

    async associateLineItemsWithCarts(inputs) {
      const answer = await call("POST", paths.associationsBatchDefault("line_items", "carts"), {
        inputs: inputs.map((a) => ({ from: { id: a.lineItemId }, to: { id: a.cartId } })),
      });
      return readBatch(answer);
    },

    async archiveLineItems(ids) {
      const answer = await call("POST", paths.batchArchive("line_items"), {
        inputs: ids.map((id) => ({ id })),
      });
      return { rateLimit: answer.rateLimit };
    },

    listLineItemProperties: () => client.listProperties("line_items"),
    createLineItemProperty: (def) => client.createProperty("line_items", def),

    listCartProperties: () => client.listProperties("carts"),
    createCartProperty: (def) => client.createProperty("carts", def),
    listCartPropertyGroups: () => client.listPropertyGroups("carts"),

    async listProperties(type) {
      return readPropertyDefinitions(await call("GET", paths.properties(type)));
    },

    async createProperty(type, def) {
      try {
        await call("POST", paths.properties(type), def);
        return "created";
      } catch (error) {
        if (error instanceof HubSpotRequestRefusedError && error.status === 409) return "exists";
        throw error;
      }
    },

    async listPropertyGroups(type) {
      return readPropertyGroupNames(await call("GET", paths.propertyGroups(type)));
    },

    close,
  };
  return client;
}
