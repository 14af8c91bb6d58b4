/**
 * Every HubSpot path the bridge uses, in one table, for the API version chosen by `HUBSPOT_API_VERSION`
 * (see ../shared/reference/hubspot.md §8):
 *
 * | what                              | `v3`                                              | a date version `D` (e.g. `2026-09`)                   |
 * | --------------------------------- | ------------------------------------------------- | ----------------------------------------------------- |
 * | objects (upsert, archive, read)   | `/crm/v3/objects/<type>/…`                        | `/crm/objects/D/<type>/…`                             |
 * | properties and property groups    | `/crm/v3/properties/<type>[/groups]`              | `/crm/properties/D/<type>[/groups]`                   |
 * | associations between two types    | `/crm/v4/associations/<from>/<to>/…`              | `/crm/associations/D/<from>/<to>/…`                   |
 * | one record's default association  | `/crm/v4/objects/<from>/<id>/associations/default/<to>/<id>` | `/crm/objects/D/<from>/<id>/associations/default/<to>/<id>` |
 *
 * Bodies and answers are the same in every version. v3 and v4 are unsupported from 2027 (v4 from March,
 * v3 from September), so moving to a date version is a configuration change, not a code change.
 */

/** The HubSpot object types the bridge writes. */
export type HubSpotObjectType = "carts" | "contacts" | "line_items";

/** `v3` (HubSpot's semantic versions v3/v4) or a date version `YYYY-MM`. */
export type HubSpotApiVersion = string;

export const DEFAULT_HUBSPOT_API_VERSION = "v3";

/** HubSpot publishes date versions twice a year, in March and September (2025-09, 2026-03, 2026-09, …). */
export const HUBSPOT_API_VERSION_PATTERN = /^(?:v3|20\d\d-(?:03|09))$/;

export function isHubSpotApiVersion(value: string): boolean {
  return HUBSPOT_API_VERSION_PATTERN.test(value);
}

/** Whether this version enforces a portal's required properties on every create and update (2026-09 on). */
export function enforcesRequiredProperties(version: HubSpotApiVersion): boolean {
  return version !== "v3" && version >= "2026-09";
}

export interface HubSpotPaths {
  readonly version: HubSpotApiVersion;
  batchUpsert(type: HubSpotObjectType): string;
  batchArchive(type: HubSpotObjectType): string;
  batchRead(type: HubSpotObjectType): string;
  /** One record, by id (or by `?idProperty=` value). */
  object(type: HubSpotObjectType, id: string): string;
  properties(type: HubSpotObjectType): string;
  property(type: HubSpotObjectType, name: string): string;
  propertyGroups(type: HubSpotObjectType): string;
  /** Labelled batch create (association types given in the body). */
  associationsBatchCreate(from: HubSpotObjectType, to: HubSpotObjectType): string;
  /** Default (unlabelled) batch association. */
  associationsBatchDefault(from: HubSpotObjectType, to: HubSpotObjectType): string;
  associationsBatchArchive(from: HubSpotObjectType, to: HubSpotObjectType): string;
  associationLabels(from: HubSpotObjectType, to: HubSpotObjectType): string;
  /** PUT: the default association of one record with another. */
  associationDefault(from: HubSpotObjectType, fromId: string, to: HubSpotObjectType, toId: string): string;
}

export function hubspotPaths(version: HubSpotApiVersion = DEFAULT_HUBSPOT_API_VERSION): HubSpotPaths {
  if (!isHubSpotApiVersion(version)) throw new Error(`not a HubSpot API version: ${version}`);
  const legacy = version === "v3";
  const objects = legacy ? "/crm/v3/objects" : `/crm/objects/${version}`;
  const properties = legacy ? "/crm/v3/properties" : `/crm/properties/${version}`;
  const associations = legacy ? "/crm/v4/associations" : `/crm/associations/${version}`;
  // The one-record association path lives under objects: v4 in the legacy scheme.
  const objectAssociations = legacy ? "/crm/v4/objects" : `/crm/objects/${version}`;
  const seg = encodeURIComponent;
  return {
    version,
    batchUpsert: (type) => `${objects}/${type}/batch/upsert`,
    batchArchive: (type) => `${objects}/${type}/batch/archive`,
    batchRead: (type) => `${objects}/${type}/batch/read`,
    object: (type, id) => `${objects}/${type}/${seg(id)}`,
    properties: (type) => `${properties}/${type}`,
    property: (type, name) => `${properties}/${type}/${seg(name)}`,
    propertyGroups: (type) => `${properties}/${type}/groups`,
    associationsBatchCreate: (from, to) => `${associations}/${from}/${to}/batch/create`,
    associationsBatchDefault: (from, to) => `${associations}/${from}/${to}/batch/associate/default`,
    associationsBatchArchive: (from, to) => `${associations}/${from}/${to}/batch/archive`,
    associationLabels: (from, to) => `${associations}/${from}/${to}/labels`,
    associationDefault: (from, fromId, to, toId) =>
      `${objectAssociations}/${from}/${seg(fromId)}/associations/default/${to}/${seg(toId)}`,
  };
}
