import type { LogSink } from "./lane-types.ts";

/**
 * From API version 2026-09 HubSpot enforces a portal's required properties on every create and update
 * (../shared/reference/hubspot.md §8). A required cart property the bridge does not write makes HubSpot
 * reject every such cart: retrying cannot help, so the carts are dead-lettered with HubSpot's message (the
 * flusher does that), and this watch names the properties once in the log and in /readyz until a cart is
 * written again. The fix is in HubSpot (make the property optional, or give it a default), then replay.
 */
export interface RequiredPropertyWatch {
  /** Carts HubSpot rejected (their reasons are HubSpot's messages). */
  rejected(reasons: readonly string[]): void;
  /** A batch wrote carts: the portal accepts what the bridge sends again. */
  sent(): void;
  /** The readiness reason while required properties block carts, else undefined. */
  problem(): string | undefined;
}

/**
 * The property names a HubSpot message says are required and missing. HubSpot lists invalid values as
 * `Property values were not valid: [{"isValid":false,"error":"…","name":"…","message":"…"}]`; an entry
 * counts when its error code or message speaks of a required property.
 */
export function requiredPropertiesIn(message: string): string[] {
  const names = new Set<string>();
  const list = /\[\s*\{[\s\S]*\}\s*\]/.exec(message)?.[0];
  if (list !== undefined) {
    try {
      for (const entry of JSON.parse(list) as unknown[]) {
        const e = entry as { error?: unknown; message?: unknown; name?: unknown };
        const text = `${typeof e.error === "string" ? e.error : ""} ${typeof e.message === "string" ? e.message : ""}`;
        if (typeof e.name === "string" && /required/i.test(text)) names.add(e.name);
      }
    } catch {
      // Not JSON after all: fall through to the plain-text form.
    }
  }
  for (const m of message.matchAll(/(?:required property|property) "?([a-z][a-z0-9_]*)"? is required/gi)) {
    if (m[1] !== undefined) names.add(m[1]);
  }
  return [...names].sort();
}

export function createRequiredPropertyWatch(opts: {
  objectType: string;
  log: LogSink;
}): RequiredPropertyWatch {
  let blocking: string[] = [];
  const logged = new Set<string>();
  return {
    rejected(reasons) {
      const names = new Set<string>();
      for (const reason of reasons) for (const name of requiredPropertiesIn(reason)) names.add(name);
      if (names.size === 0) return;
      blocking = [...names].sort();
      const fresh = blocking.filter((n) => !logged.has(n));
      if (fresh.length === 0) return;
      for (const n of fresh) logged.add(n);
      opts.log.error(
        { objectType: opts.objectType, properties: fresh },
        "HubSpot requires properties cartbridge does not write; those carts are dead-lettered",
      );
    },
    sent() {
      blocking = [];
    },
    problem() {
      if (blocking.length === 0) return undefined;
      return (
        `HubSpot requires ${opts.objectType} propert${blocking.length === 1 ? "y" : "ies"} ` +
        `${blocking.join(", ")} on every write (API 2026-09 and later), and cartbridge does not write ` +
        `${blocking.length === 1 ? "it" : "them"}: those ${opts.objectType} are dead-lettered. Make ` +
        `${blocking.length === 1 ? "it" : "them"} optional in HubSpot (Settings → Properties), then replay ` +
        `the dead letters`
      );
    },
  };
}
