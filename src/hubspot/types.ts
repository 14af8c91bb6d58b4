/** What HubSpot's X-HubSpot-RateLimit-* headers said on the last answer (each may be missing). */
export interface RateLimitInfo {
  readonly max?: number;
  readonly remaining?: number;
  readonly intervalMs?: number;
  readonly daily?: number;
  readonly dailyRemaining?: number;
}

export interface UpsertInput {
  readonly id: string;
  readonly idProperty: string;
  readonly objectWriteTraceId: string;
  readonly properties: Readonly<Record<string, string>>;
}

export interface UpsertResult {
  /** HubSpot's record id (hs_object_id). */
  readonly id: string;
  readonly objectWriteTraceId: string | undefined;
  /** The id-property value, when HubSpot echoed it. */
  readonly idValue: string | undefined;
}

export interface InputError {
  readonly message: string;
  readonly category: string | undefined;
  readonly traceIds: readonly string[];
  readonly ids: readonly string[];
  /** Every list in the error's `context` (associations name `fromObjectId` / `toObjectId`). */
  readonly context: Readonly<Record<string, readonly string[]>>;
}

/** A 200 or 207 answer to a batch upsert. */
export interface BatchOutcome {
  readonly results: readonly UpsertResult[];
  readonly errors: readonly InputError[];
  readonly rateLimit: RateLimitInfo | undefined;
}

export interface PropertyDefinition {
  readonly name: string;
  readonly type: string;
  readonly fieldType?: string;
  readonly hasUniqueValue?: boolean;
  readonly readOnlyValue: boolean;
  readonly options: readonly string[];
}

export interface AssociationInput {
  readonly cartId: string;
  readonly contactId: string;
}

export interface LineItemAssociation {
  readonly lineItemId: string;
  readonly cartId: string;
}
