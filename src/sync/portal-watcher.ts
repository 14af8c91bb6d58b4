import type { HubSpotClient } from "../hubspot/client.ts";
import type { PropertyDefinition } from "../hubspot/types.ts";
import { HubSpotAuthError } from "../hubspot/errors.ts";
import { keyPropertySpec, missingAdvice, notUniqueAdvice } from "../hubspot/key-property.ts";
import { observedRequest } from "./lane-requests.ts";
import type { LogSink, SenderObserver } from "./lane-types.ts";
import { createPortalProperties, type PortalProperties } from "./portal-properties.ts";

/**
 * Keeps the portal's cart properties current: read at start-up, every `refreshMs` after, and every
 * `retryMs` while they could not be read or the cart id property is unusable.
 */
export interface PortalWatcher {
  current(): PortalProperties | undefined;
  /** Why the portal is not usable, or undefined when it is. */
  problem(): string | undefined;
  refresh(): Promise<void>;
  start(): void;
  stop(): void;
}

export interface PortalWatcherOptions {
  client: HubSpotClient;
  idProperty: string;
  log: LogSink;
  refreshMs?: number;
  retryMs?: number;
  /** Called when the portal becomes usable (or stops being so). */
  onChange?: () => void;
  /** Waits for a request slot: the read counts against the same rate budget as the upserts. */
  beforeRequest?: () => Promise<void>;
  /** Told each read's answer, as `<type>_properties_read` (the metrics count every HubSpot request). */
  observer?: Pick<SenderObserver, "request">;
  /** Another object's properties (line items): how to list them, its name, its id property variable. */
  object?: {
    list: () => Promise<PropertyDefinition[]>;
    name: string;
    type: "carts" | "line_items";
    variable: string;
  };
}

export function createPortalWatcher(opts: PortalWatcherOptions): PortalWatcher {
  const object = opts.object ?? cartObject(opts.client);
  const refreshMs = opts.refreshMs ?? 5 * 60_000;
  const retryMs = opts.retryMs ?? 5_000;
  let portal: PortalProperties | undefined;
  let lastError: string | undefined = `HubSpot ${object.name} properties not read yet`;
  let timer: NodeJS.Timeout | undefined;
  let stopped = true;

  function problem(): string | undefined {
    if (portal === undefined) return lastError ?? `HubSpot ${object.name} properties not read yet`;
    return idPropertyProblem(portal, object.type, opts.idProperty);
  }

  async function refresh(): Promise<void> {
    try {
      await opts.beforeRequest?.();
      const read = { operation: `${object.type}_properties_read`, size: 0 };
      const definitions = await observedRequest(opts.observer ?? {}, read, object.list, () => "200");
      const before = problem();
      portal = createPortalProperties(definitions, opts.idProperty);
      lastError = undefined;
      const after = problem();
      if (after !== before) {
        opts.onChange?.();
        if (after === undefined)
          opts.log.info({ properties: definitions.length, object: object.name }, "HubSpot properties read");
        else
          opts.log.error(
            { idProperty: opts.idProperty, object: object.name, problem: after },
            "HubSpot id property unusable",
          );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      lastError = readFailure(error, object.name, message);
      opts.log.warn({ err: message, object: object.name }, "reading HubSpot properties failed");
    }
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(
      () => {
        void refresh().finally(schedule);
      },
      problem() === undefined ? refreshMs : retryMs,
    );
    timer.unref();
  }

  return {
    current: () => portal,
    problem,
    refresh,
    start() {
      if (!stopped) return;
      stopped = false;
      void refresh().finally(schedule);
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

type WatchedObject = NonNullable<PortalWatcherOptions["object"]>;

function cartObject(client: HubSpotClient): WatchedObject {
  return {
    list: () => client.listCartProperties(),
    name: "cart",
    type: "carts",
    variable: "HUBSPOT_CART_ID_PROPERTY",
  };
}

/** The same advice setup-hubspot and status give (a definition to create by hand, or another name). */
function idPropertyProblem(
  portal: PortalProperties,
  type: WatchedObject["type"],
  idProperty: string,
): string | undefined {
  const spec = keyPropertySpec(type, idProperty);
  if (portal.idPropertyStatus === "missing") return missingAdvice(spec);
  if (portal.idPropertyStatus === "not_unique") return notUniqueAdvice(spec);
  return undefined;
}

/** Why the properties could not be read, as readiness says it (a refused token names the scope). */
function readFailure(error: unknown, objectName: string, message: string): string {
  return error instanceof HubSpotAuthError
    ? `HubSpot refused to list ${objectName} properties (${error.status}); check HUBSPOT_ACCESS_TOKEN and its ${objectName === "cart" ? "crm.objects.carts.read" : "crm.objects.line_items.read"} scope`
    : `HubSpot ${objectName} properties could not be read: ${message}`;
}
