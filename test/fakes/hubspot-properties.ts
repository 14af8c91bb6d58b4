/**
 * Property schema and value rules of the fake HubSpot (see ../shared/reference/hubspot.md §1).
 *
 * A property definition says what a portal accepts: whether it exists, whether it is read-only, and which
 * string values are valid for its type. `validatePropertyValue` encodes HubSpot's documented value formats.
 */

export type PropertyType = "string" | "number" | "enumeration" | "datetime" | "bool" | "date";

export interface PropertyOption {
  value: string;
  label: string;
}

export interface PropertyDefinition {
  name: string;
  type: PropertyType;
  fieldType?: string;
  hasUniqueValue?: boolean;
  readOnlyValue?: boolean;
  options?: PropertyOption[];
  groupName?: string;
  label?: string;
}

/** One entry of HubSpot's "Property values were not valid: [...]" list. */
export interface PropertyValidationResult {
  isValid: false;
  message: string;
  error: string;
  name: string;
}

export const PROPERTY_TYPES: readonly PropertyType[] = [
  "string",
  "number",
  "enumeration",
  "datetime",
  "bool",
  "date",
];
export const CART_PROPERTY_GROUP = { name: "cart_information", label: "Cart information" } as const;
export const MAX_STRING_LENGTH = 65_536;
export const CART_KEY_PROPERTY = "shopify_cart_key";

const CURRENCY_CODES =
  "USD EUR GBP CAD AUD JPY CHF NZD SEK NOK DKK PLN CZK HUF MXN BRL INR CNY HKD SGD ZAR KRW ILS AED".split(
    " ",
  );

const NUMBER_PATTERN = /^-?\d+(\.\d+)?$/;
const EPOCH_MS_PATTERN = /^-?\d{1,15}$/;
const ISO_DATETIME_PATTERN = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const DAY_MS = 86_400_000;

function prop(name: string, type: PropertyType, extra: Partial<PropertyDefinition> = {}): PropertyDefinition {
  return { name, type, ...extra };
}

/** A realistic cart schema: the documented properties (§1a), a live portal's extras (§1b), system fields. */
export function defaultCartProperties(): PropertyDefinition[] {
  const addressFields = ["street", "city", "state", "postal_code", "country", "phone"];
  return [
    prop("hs_cart_name", "string", { label: "Name" }),
    prop("hs_external_cart_id", "string", { label: "Cart ID" }),
    prop("hs_source_store", "string", { label: "Source Store" }),
    prop("hs_external_status", "string", { label: "Status" }),
    prop("hs_cart_url", "string", { label: "Cart Url" }),
    prop("hs_total_price", "number", { label: "Total Price" }),
    prop("hs_currency_code", "enumeration", {
      label: "Currency Code",
      options: CURRENCY_CODES.map((code) => ({ value: code, label: code })),
    }),
    prop("hs_cart_discount", "number", { label: "Cart Discount" }),
    prop("hs_tax", "number", { label: "Tax" }),
    prop("hs_shipping_cost", "number", { label: "Shipping Cost" }),
    prop("hs_tags", "string", { label: "Tags" }),
    prop("hs_subtotal_price", "number", { label: "Subtotal Price" }),
    prop("hs_discount_codes", "string", { label: "Discount Codes" }),
    prop("hs_external_token", "string", { label: "External Token" }),
    prop("hs_external_created_date", "datetime", { label: "External Created Date" }),
    prop("hs_external_modified_date", "datetime", { label: "External Modified Date" }),
    prop("hs_landing_site", "string", { label: "Landing Site" }),
    prop("hs_referring_site", "string", { label: "Referring Site" }),
    prop("hs_total_weight", "string", { label: "Total Weight" }),
    prop("hs_buyer_accepts_marketing", "bool", { label: "Buyer Accepts Marketing" }),
    ...addressFields.map((f) => prop(`hs_shipping_address_${f}`, "string")),
    ...addressFields.map((f) => prop(`hs_billing_address_${f}`, "string")),
    prop("hs_object_id", "number", { label: "Record ID", readOnlyValue: true }),
    prop("hs_createdate", "datetime", { label: "Create Date", readOnlyValue: true }),
    prop("hs_lastmodifieddate", "datetime", { label: "Last Modified Date", readOnlyValue: true }),
    prop("hs_homecurrency_amount", "number", { label: "Amount in company currency", readOnlyValue: true }),
    prop("hs_exchange_rate", "number", { label: "Exchange rate", readOnlyValue: true }),
  ];
}

export function cartKeyPropertyDefinition(): PropertyDefinition {
  return prop(CART_KEY_PROPERTY, "string", {
    label: "Shopify cart key",
    fieldType: "text",
    hasUniqueValue: true,
    groupName: CART_PROPERTY_GROUP.name,
  });
}

/** Contact properties the fake accepts on contacts upserts (`email` is the unique one). */
export const CONTACT_PROPERTY_NAMES: ReadonlySet<string> = new Set([
  "email",
  "firstname",
  "lastname",
  "phone",
  "mobilephone",
  "company",
  "website",
  "address",
  "city",
  "state",
  "zip",
  "country",
]);

export const EMAIL_PATTERN = /^[^\s@"<>(),;:]+@[^\s@"<>(),;:]+\.[A-Za-z]{2,}$/;

function defaultFieldType(type: PropertyType): string {
  switch (type) {
    case "string":
      return "text";
    case "number":
      return "number";
    case "enumeration":
      return "select";
    case "bool":
      return "booleancheckbox";
    case "datetime":
    case "date":
      return "date";
  }
}

/** The shape `GET /crm/v3/properties/carts` answers with. */
export function serializeProperty(def: PropertyDefinition, displayOrder: number): Record<string, unknown> {
  const options =
    def.type === "bool"
      ? [
          { value: "true", label: "Yes", displayOrder: 0, hidden: false },
          { value: "false", label: "No", displayOrder: 1, hidden: false },
        ]
      : (def.options ?? []).map((o, i) => ({ ...o, displayOrder: i, hidden: false }));
  const readOnly = def.readOnlyValue === true;
  return {
    name: def.name,
    label: def.label ?? def.name,
    type: def.type,
    fieldType: def.fieldType ?? defaultFieldType(def.type),
    description: "",
    groupName: def.groupName ?? CART_PROPERTY_GROUP.name,
    options,
    displayOrder,
    calculated: false,
    externalOptions: false,
    hasUniqueValue: def.hasUniqueValue === true,
    hidden: false,
    archived: false,
    formField: !readOnly,
    modificationMetadata: {
      archivable: !def.name.startsWith("hs_"),
      readOnlyDefinition: def.name.startsWith("hs_"),
      readOnlyValue: readOnly,
    },
  };
}

function invalid(def: PropertyDefinition, error: string, message: string): PropertyValidationResult {
  return { isValid: false, message, error, name: def.name };
}

/** Checks one written value against its definition; `null` when HubSpot would accept it. */
export function validatePropertyValue(
  def: PropertyDefinition,
  value: unknown,
): PropertyValidationResult | null {
  if (def.readOnlyValue === true) {
    return invalid(def, "READ_ONLY_VALUE", `Property "${def.name}" is read-only`);
  }
  if (typeof value !== "string") {
    return invalid(def, "INVALID_TYPE", `${JSON.stringify(value)} is not a string value for "${def.name}"`);
  }
  if (value === "") return null; // clears the property
  switch (def.type) {
    case "string":
      return value.length <= MAX_STRING_LENGTH
        ? null
        : invalid(
            def,
            "STRING_TOO_LONG",
            `Value for "${def.name}" is longer than ${MAX_STRING_LENGTH} characters`,
          );
    case "number":
      return NUMBER_PATTERN.test(value)
        ? null
        : invalid(def, "INVALID_DECIMAL", `${value} was not a valid number.`);
    case "enumeration":
      return (def.options ?? []).some((o) => o.value === value)
        ? null
        : invalid(
            def,
            "INVALID_OPTION",
            `${value} was not one of the allowed options: [${(def.options ?? []).map((o) => o.value).join(", ")}]`,
          );
    case "bool":
      return value === "true" || value === "false"
        ? null
        : invalid(def, "INVALID_OPTION", `${value} was not one of the allowed options: [true, false]`);
    case "datetime":
      return EPOCH_MS_PATTERN.test(value) ||
        (ISO_DATETIME_PATTERN.test(value) && !Number.isNaN(Date.parse(value)))
        ? null
        : invalid(def, "INVALID_DATE", `${value} was not a valid long or ISO 8601 datetime.`);
    case "date":
      return (DATE_PATTERN.test(value) && !Number.isNaN(Date.parse(value))) ||
        (EPOCH_MS_PATTERN.test(value) && Number(value) % DAY_MS === 0)
        ? null
        : invalid(def, "INVALID_DATE", `${value} is not a valid date (midnight UTC).`);
  }
}

/** Validates a property definition posted to `POST /crm/v3/properties/carts`; returns the problems found. */
export function parsePropertyCreate(body: unknown): { def: PropertyDefinition } | { problems: string[] } {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    return { problems: ["body must be an object"] };
  const b = body as Record<string, unknown>;
  const problems: string[] = [];
  for (const field of ["name", "label", "type", "fieldType", "groupName"]) {
    if (typeof b[field] !== "string" || b[field] === "") problems.push(`${field} is required`);
  }
  if (typeof b.name === "string" && !/^[a-z][a-z0-9_]*$/.test(b.name))
    problems.push(`invalid name ${b.name}`);
  if (typeof b.type === "string" && !PROPERTY_TYPES.includes(b.type as PropertyType)) {
    problems.push(`invalid type ${b.type}`);
  }
  if (b.hasUniqueValue !== undefined && typeof b.hasUniqueValue !== "boolean")
    problems.push("hasUniqueValue must be a boolean");
  if (problems.length > 0) return { problems };
  const options = Array.isArray(b.options)
    ? (b.options as unknown[]).flatMap((o) => {
        const opt = o as Record<string, unknown> | null;
        if (!opt || typeof opt.value !== "string") return [];
        return [{ value: opt.value, label: typeof opt.label === "string" ? opt.label : opt.value }];
      })
    : undefined;
  return {
    def: {
      name: b.name as string,
      label: b.label as string,
      type: b.type as PropertyType,
      fieldType: b.fieldType as string,
      groupName: b.groupName as string,
      hasUniqueValue: b.hasUniqueValue === true,
      ...(options ? { options } : {}),
    },
  };
}
