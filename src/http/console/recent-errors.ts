/** The last few HubSpot requests that did not succeed (operation, status, when), newest first. */
export interface HubSpotErrorEntry {
  readonly atMs: number;
  readonly operation: string;
  readonly status: string;
}

export interface RecentErrors {
  record(entry: HubSpotErrorEntry): void;
  list(): readonly HubSpotErrorEntry[];
}

export function createRecentErrors(keep = 20): RecentErrors {
  let entries: HubSpotErrorEntry[] = [];
  return {
    record(entry) {
      entries = [entry, ...entries.slice(0, keep - 1)];
    },
    list: () => entries,
  };
}

/**
 * True for a request status the sender's observer reports that is not a full success: anything but a 2xx,
 * and a 207 (HubSpot refused some of the batch's inputs; they became dead letters).
 */
export function isErrorStatus(status: string): boolean {
  return status === "207" || !/^2\d\d$/.test(status);
}
