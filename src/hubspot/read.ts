import type { Answer } from "./transport.ts";
import type { BatchOutcome, InputError, PropertyDefinition, UpsertResult } from "./types.ts";

/** Reading HubSpot's JSON answers into the client's types; anything unexpected is left out, never thrown. */

/** A batch answer (upsert, associate): the results it names and the inputs it refused. */
export function readBatch(answer: Answer, idProperty?: string): BatchOutcome {
  const body = (answer.json ?? {}) as { results?: unknown[]; errors?: unknown[] };
  const results = (body.results ?? []).flatMap((raw): UpsertResult[] => {
    const r = raw as { id?: unknown; objectWriteTraceId?: unknown; properties?: Record<string, unknown> };
    if (typeof r.id !== "string" && typeof r.id !== "number") return [];
    return [
      {
        id: String(r.id),
        objectWriteTraceId: typeof r.objectWriteTraceId === "string" ? r.objectWriteTraceId : undefined,
        idValue:
          idProperty !== undefined && typeof r.properties?.[idProperty] === "string"
            ? r.properties[idProperty]
            : undefined,
      },
    ];
  });
  const errors = (body.errors ?? []).map((raw): InputError => {
    const e = raw as { message?: unknown; category?: unknown; context?: Record<string, unknown> };
    return {
      message: typeof e.message === "string" ? e.message : "rejected by HubSpot",
      category: typeof e.category === "string" ? e.category : undefined,
      traceIds: stringList(e.context?.["objectWriteTraceId"]),
      ids: stringList(e.context?.["ids"] ?? e.context?.["id"]),
      context: Object.fromEntries(Object.entries(e.context ?? {}).map(([k, v]) => [k, stringList(v)])),
    };
  });
  return { results, errors, rateLimit: answer.rateLimit };
}

/** A properties listing: each property with a name, its type, uniqueness, read-only flag and options. */
export function readPropertyDefinitions(answer: Answer): PropertyDefinition[] {
  const results = (answer.json as { results?: unknown[] } | undefined)?.results ?? [];
  return results.flatMap((raw): PropertyDefinition[] => {
    const p = raw as Record<string, unknown>;
    if (typeof p["name"] !== "string") return [];
    const meta = p["modificationMetadata"] as { readOnlyValue?: unknown } | undefined;
    const options = Array.isArray(p["options"]) ? (p["options"] as Array<{ value?: unknown }>) : [];
    return [
      {
        name: p["name"],
        type: typeof p["type"] === "string" ? p["type"] : "string",
        ...(typeof p["fieldType"] === "string" ? { fieldType: p["fieldType"] } : {}),
        hasUniqueValue: p["hasUniqueValue"] === true,
        readOnlyValue: meta?.readOnlyValue === true,
        options: options.flatMap((o) => (typeof o.value === "string" ? [o.value] : [])),
      },
    ];
  });
}

/** A property groups listing: the group names. */
export function readPropertyGroupNames(answer: Answer): string[] {
  const results = (answer.json as { results?: Array<{ name?: unknown }> } | undefined)?.results ?? [];
  return results.flatMap((g) => (typeof g.name === "string" ? [g.name] : []));
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}
