import type { PropertyDefinition } from "../hubspot/types.ts";

/**
 * What the portal accepts, learned from GET /crm/v3/properties/carts. Values the portal would reject
 * (unknown or read-only property, enumeration value not offered, malformed number/date/bool) are left
 * out of the upsert instead of failing the batch.
 */
export interface DroppedValue {
  readonly property: string;
  readonly reason: "unknown_property" | "read_only" | "option_not_offered" | "invalid_value";
}

export interface PortalProperties {
  readonly idPropertyStatus: "ok" | "missing" | "not_unique";
  filter(properties: Readonly<Record<string, string>>): {
    kept: Record<string, string>;
    dropped: DroppedValue[];
  };
}

const NUMBER = /^-?\d+(\.\d+)?$/;

export function createPortalProperties(
  definitions: readonly PropertyDefinition[],
  idProperty: string,
): PortalProperties {
  const byName = new Map(definitions.map((d) => [d.name, d]));
  const id = byName.get(idProperty);
  const idPropertyStatus = id === undefined ? "missing" : id.hasUniqueValue === true ? "ok" : "not_unique";
  const optionSets = new Map(
    definitions.filter((d) => d.type === "enumeration").map((d) => [d.name, new Set(d.options)]),
  );

  return {
    idPropertyStatus,
    filter(properties) {
      const kept: Record<string, string> = {};
      const dropped: DroppedValue[] = [];
      for (const [name, value] of Object.entries(properties)) {
        const def = byName.get(name);
        const reason =
          def === undefined
            ? "unknown_property"
            : def.readOnlyValue
              ? "read_only"
              : value === ""
                ? undefined // an empty string clears any property
                : def.type === "enumeration" && optionSets.get(name)?.has(value) !== true
                  ? "option_not_offered"
                  : validForType(def.type, value)
                    ? undefined
                    : "invalid_value";
        if (reason === undefined) kept[name] = value;
        else dropped.push({ property: name, reason });
      }
      return { kept, dropped };
    },
  };
}

function validForType(type: string, value: string): boolean {
  switch (type) {
    case "number":
      return NUMBER.test(value);
    case "bool":
    case "booleancheckbox":
      return value === "true" || value === "false";
    case "datetime":
    case "date":
      return /^\d+$/.test(value) || !Number.isNaN(Date.parse(value));
    default:
      return value.length <= 65_536;
  }
}

/** The values of `properties` the portal accepts (see `createValueFilter`). */
export type ValueFilter = (
  portal: PortalProperties,
  properties: Readonly<Record<string, string>>,
) => Record<string, string>;

/**
 * `portal.filter`, reporting each left-out value to the observer and logging each (property, reason) once per
 * process with `message` — the cart and line item lanes share it.
 */
export function createValueFilter(opts: {
  log: { warn(obj: object, msg: string): void };
  onDropped?: ((value: DroppedValue) => void) | undefined;
  message: string;
}): ValueFilter {
  const reported = new Set<string>();
  return (portal, properties) => {
    const { kept, dropped } = portal.filter(properties);
    for (const d of dropped) {
      opts.onDropped?.(d);
      const key = `${d.property}:${d.reason}`;
      if (reported.has(key)) continue;
      reported.add(key);
      opts.log.warn({ property: d.property, reason: d.reason }, opts.message);
    }
    return kept;
  };
}
