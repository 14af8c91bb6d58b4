/**
 * HubSpot's two path schemes (../shared/reference/hubspot.md §8): the semantic `/crm/v3/…` and `/crm/v4/…`,
 * and the date-versioned `/crm/objects/<date>/…`, `/crm/properties/<date>/…`, `/crm/associations/<date>/…`
 * with the same bodies and answers. The fake routes on the v3/v4 form and remembers which version was used.
 */

/** "v3" for the semantic paths (v3 and v4 alike), else the date version (e.g. "2026-09"). */
export type PathVersion = string;

const DATE_PATH = /^\/crm\/(objects|properties|associations)\/(\d{4}-\d{2})(?=\/|$)/;

/** The version a path names and the same path in the v3/v4 scheme; `undefined` when it is neither. */
export function parseVersionedPath(path: string): { version: PathVersion; legacyPath: string } | undefined {
  if (/^\/crm\/v[34]\//.test(path)) return { version: "v3", legacyPath: path };
  const m = DATE_PATH.exec(path);
  if (!m) return undefined;
  const family = m[1] as "objects" | "properties" | "associations";
  const prefix = family === "associations" ? "/crm/v4/associations" : `/crm/v3/${family}`;
  // One record's default association is a v4 path in the semantic scheme.
  const rest = path.slice(m[0].length);
  const legacyPath =
    family === "objects" && /^\/[^/]+\/[^/]+\/associations\//.test(rest)
      ? `/crm/v4/objects${rest}`
      : `${prefix}${rest}`;
  return { version: m[2] as string, legacyPath };
}

/** From 2026-09 HubSpot enforces a portal's required properties on every CRM create and update. */
export function versionEnforcesRequiredProperties(version: PathVersion): boolean {
  return version !== "v3" && version >= "2026-09";
}

/**
 * The version the suite runs HubSpot under: `HUBSPOT_API_VERSION` of the test environment, else v3.
 * CI runs `npm test` once with each (see .ci/run).
 */
export function testHubSpotApiVersion(): string {
  const v = process.env["HUBSPOT_API_VERSION"];
  return v === undefined || v.trim() === "" ? "v3" : v.trim();
}
