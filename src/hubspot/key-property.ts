import type { HubSpotClient } from "./client.ts";
import { HubSpotAuthError } from "./errors.ts";
import type { HubSpotObjectType } from "./paths.ts";

/**
 * The unique key property the bridge upserts by, for any object type (carts: HUBSPOT_CART_ID_PROPERTY;
 * line items: HUBSPOT_LINE_ITEM_ID_PROPERTY), and the advice an operator needs when the bridge cannot make it
 * (../shared/reference/hubspot.md §1c, §8): today's tokens (service keys, static-token project apps) may lack
 * the `crm.schemas.<type>.write` scope, and uniqueness can only be chosen when a property is created.
 * `setup-hubspot`, `status` and `/readyz` all speak through these functions, so they say the same thing.
 */
export interface KeyPropertySpec {
  readonly objectType: HubSpotObjectType;
  /** The property's internal name. */
  readonly name: string;
  readonly label: string;
  readonly description: string;
  /** The variable that names the property. */
  readonly envVar: string;
  /** The group it goes in, when the portal has it (else the portal's first group). */
  readonly preferredGroup: string;
  /** What HubSpot's settings call the object ("Carts", "Line items"). */
  readonly objectLabel: string;
  /** One of them, in a sentence ("cart", "line item"). */
  readonly noun: string;
}

const SPECS: Record<
  "carts" | "line_items",
  Omit<KeyPropertySpec, "name" | "objectType"> & { readonly defaultName: string }
> = {
  carts: {
    defaultName: "shopify_cart_key",
    label: "Shopify cart key",
    description: "<shop domain>:<cart token>, written by cartbridge; unique per cart",
    envVar: "HUBSPOT_CART_ID_PROPERTY",
    preferredGroup: "cart_information",
    objectLabel: "Carts",
    noun: "cart",
  },
  line_items: {
    defaultName: "shopify_line_item_key",
    label: "Shopify line item key",
    description: "<cart key>:<variant id>, written by cartbridge; unique per cart line",
    envVar: "HUBSPOT_LINE_ITEM_ID_PROPERTY",
    preferredGroup: "lineiteminformation",
    objectLabel: "Line items",
    noun: "line item",
  },
};

export function keyPropertySpec(objectType: "carts" | "line_items", name: string): KeyPropertySpec {
  const { defaultName: _unused, ...spec } = SPECS[objectType];
  return { objectType, name, ...spec };
}

/** The exact definition to create by hand in HubSpot's settings. */
export function manualDefinition(spec: KeyPropertySpec, groupName = spec.preferredGroup): string {
  return [
    `In HubSpot: Settings → Data Management → Properties → ${spec.objectLabel} → Create property, with:`,
    `  object type:    ${spec.objectLabel}`,
    `  group:          ${groupName}`,
    `  label:          ${spec.label}`,
    `  internal name:  ${spec.name}`,
    `  field type:     Single-line text (API: type "string", fieldType "text")`,
    `  rules:          "Require unique values for this property" ON (it cannot be turned on later)`,
  ].join("\n");
}

/** The token may not create properties (403): what to do instead. */
export function cannotCreateAdvice(spec: KeyPropertySpec, groupName?: string): string {
  return (
    `HubSpot refused to create the ${spec.noun} property ${spec.name} (403): this token ` +
    `cannot create properties (it lacks crm.schemas.${spec.objectType}.write, which service keys may not ` +
    `offer). Create it by hand once:\n${manualDefinition(spec, groupName)}\n` +
    `then run setup-hubspot again to check it.`
  );
}

/**
 * The property exists but is not unique: it cannot be fixed in place. The name suggested instead drops an
 * `hs_` prefix: HubSpot keeps that prefix for its own properties, so a custom one cannot have it.
 */
export function notUniqueAdvice(spec: KeyPropertySpec): string {
  const suggested = `${spec.name.replace(/^hs_/, "")}_unique`;
  return (
    `${spec.noun} property ${spec.name} exists in HubSpot but without unique values, ` +
    `and HubSpot cannot make an existing property unique. Choose another name with ${spec.envVar} ` +
    `(e.g. ${spec.envVar}=${suggested}), then run setup-hubspot to create it, or create it by hand ` +
    `as below:\n${manualDefinition({ ...spec, name: suggested })}`
  );
}

/** The property does not exist yet. */
export function missingAdvice(spec: KeyPropertySpec): string {
  return (
    `${spec.noun} property ${spec.name} does not exist in HubSpot; run ` +
    `\`cartbridge setup-hubspot\` to create it, or, if the token cannot create properties, create it by ` +
    `hand:\n${manualDefinition(spec)}`
  );
}

export type KeyPropertyState = "ok" | "missing" | "not_unique";

/** Reads the portal's property; throws the client's typed errors. */
export async function readKeyProperty(
  client: HubSpotClient,
  spec: KeyPropertySpec,
): Promise<KeyPropertyState> {
  const existing = (await client.listProperties(spec.objectType)).find((p) => p.name === spec.name);
  if (existing === undefined) return "missing";
  return existing.hasUniqueValue ? "ok" : "not_unique";
}

export function adviceFor(spec: KeyPropertySpec, state: KeyPropertyState): string | undefined {
  if (state === "missing") return missingAdvice(spec);
  if (state === "not_unique") return notUniqueAdvice(spec);
  return undefined;
}

/**
 * setup-hubspot for one key property: nothing when it exists and is unique; created when missing; the
 * advice (and exit code 1) when it is not unique or the token may not create it.
 */
export async function ensureKeyProperty(
  client: HubSpotClient,
  spec: KeyPropertySpec,
  print: (line: string) => void,
): Promise<number> {
  const state = await readKeyProperty(client, spec);
  if (state === "ok") {
    print(`${spec.noun} property ${spec.name} exists and is unique: nothing to do`);
    return 0;
  }
  if (state === "not_unique") {
    print(notUniqueAdvice(spec));
    return 1;
  }
  const groups = await client.listPropertyGroups(spec.objectType);
  const groupName = groups.includes(spec.preferredGroup)
    ? spec.preferredGroup
    : (groups[0] ?? spec.preferredGroup);
  try {
    const result = await client.createProperty(spec.objectType, {
      name: spec.name,
      label: spec.label,
      type: "string",
      fieldType: "text",
      groupName,
      hasUniqueValue: true,
      description: spec.description,
    });
    print(
      result === "created"
        ? `created unique ${spec.noun} property ${spec.name} in group ${groupName}`
        : `${spec.noun} property ${spec.name} already exists`,
    );
    return 0;
  } catch (error) {
    if (error instanceof HubSpotAuthError && error.status === 403) {
      print(cannotCreateAdvice(spec, groupName));
      return 1;
    }
    throw error;
  }
}
