import type { HubSpotClient } from "./client.ts";
import { HubSpotAuthError } from "./errors.ts";

/** HubSpot's default group for line item properties. */
export const LINE_ITEM_PROPERTY_GROUP = "lineiteminformation";

/**
 * `setup-hubspot`, line item part (SPEC §10): makes sure the unique line item id property exists.
 * Returns the lines to print and whether it succeeded. A token without `crm.schemas.line_items.write` is
 * named plainly: carts still work without line items.
 */
export async function setUpLineItemProperty(
  client: HubSpotClient,
  name: string,
): Promise<{ ok: boolean; message: string }> {
  try {
    const existing = (await client.listLineItemProperties()).find((p) => p.name === name);
    if (existing?.hasUniqueValue === true)
      return { ok: true, message: `line item property ${name} exists and is unique: nothing to do` };
    if (existing !== undefined) {
      return {
        ok: false,
        message:
          `line item property ${name} exists but is not unique, and HubSpot cannot make it unique now.\n` +
          `Choose another name with HUBSPOT_LINE_ITEM_ID_PROPERTY and run setup-hubspot again.`,
      };
    }
    const result = await client.createLineItemProperty({
      name,
      label: "Shopify line item key",
      type: "string",
      fieldType: "text",
      groupName: LINE_ITEM_PROPERTY_GROUP,
      hasUniqueValue: true,
      description: "<shop domain>:<cart token>:<variant id>, written by cartbridge; unique per cart line",
    });
    return {
      ok: true,
      message:
        result === "created"
          ? `created unique line item property ${name} in group ${LINE_ITEM_PROPERTY_GROUP}`
          : `line item property ${name} already exists`,
    };
  } catch (error) {
    if (error instanceof HubSpotAuthError) {
      return {
        ok: false,
        message:
          `HubSpot refused the line item property (${error.status}): ${error.message}\n` +
          `The token needs crm.objects.line_items.read/write and crm.schemas.line_items.write, or set HUBSPOT_SYNC_LINE_ITEMS=false.`,
      };
    }
    return {
      ok: false,
      message: `line item setup failed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}
