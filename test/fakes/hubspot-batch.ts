/**
 * Shared pieces of HubSpot's batch endpoints: the `Error` body, the upsert envelope and its checks.
 */
import { randomUUID } from "node:crypto";
import type { PropertyValidationResult } from "./hubspot-properties.ts";

export interface FakeResponse {
  status: number;
  body: unknown;
}

export const MAX_BATCH_INPUTS = 100;

/** HubSpot's `Error` shape. */
export function errorBody(
  category: string,
  message: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { status: "error", message, correlationId: randomUUID(), category, ...extra };
}

export function validationError(message: string, extra: Record<string, unknown> = {}): FakeResponse {
  return { status: 400, body: errorBody("VALIDATION_ERROR", message, extra) };
}

export function notValidMessage(results: PropertyValidationResult[]): string {
  return `Property values were not valid: ${JSON.stringify(results)}`;
}

export interface UpsertInput {
  id: string;
  idProperty: string | undefined;
  traceId: string | undefined;
  properties: Record<string, unknown>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks the envelope shared by the batch upsert endpoints; answers 400 when it is malformed. */
export function parseUpsertInputs(body: unknown): UpsertInput[] | FakeResponse {
  if (!isRecord(body) || !Array.isArray(body.inputs)) {
    return validationError("Invalid input JSON: expected an object with an `inputs` array");
  }
  const raw: unknown[] = body.inputs;
  if (raw.length === 0) return validationError("inputs must not be empty");
  if (raw.length > MAX_BATCH_INPUTS) {
    return validationError(
      `Batch input cannot contain more than ${MAX_BATCH_INPUTS} inputs (got ${raw.length})`,
    );
  }
  const inputs: UpsertInput[] = [];
  for (const [i, item] of raw.entries()) {
    if (!isRecord(item) || typeof item.id !== "string" || item.id === "" || !isRecord(item.properties)) {
      return validationError(
        `Invalid input at inputs[${i}]: \`id\` (non-empty string) and \`properties\` are required`,
      );
    }
    if (item.idProperty !== undefined && typeof item.idProperty !== "string") {
      return validationError(`Invalid input at inputs[${i}]: \`idProperty\` must be a string`);
    }
    if (item.objectWriteTraceId !== undefined && typeof item.objectWriteTraceId !== "string") {
      return validationError(`Invalid input at inputs[${i}]: \`objectWriteTraceId\` must be a string`);
    }
    inputs.push({
      id: item.id,
      idProperty: item.idProperty,
      traceId: item.objectWriteTraceId === "" ? undefined : item.objectWriteTraceId,
      properties: item.properties,
    });
  }
  return inputs;
}

export function duplicates(values: string[]): string[] {
  const seen = new Set<string>();
  const dups = new Set<string>();
  for (const v of values) (seen.has(v) ? dups : seen).add(v);
  return [...dups];
}

export function duplicateIdsError(ids: string[]): FakeResponse {
  return validationError(`Duplicate IDs found in batch input: [${ids.join(", ")}]. IDs must be unique`, {
    context: { ids },
  });
}
