import type { InputError } from "../hubspot/types.ts";

/**
 * Settles the cart → contact links of one association request (a 201 or a 207) from HubSpot's per-input
 * errors. Pure: links and errors in, three lists out.
 *
 * - An error names the links it is about in `context`: `fromObjectId` (the cart), `toObjectId` (the
 *   contact), or `ids` / `id` (either). A link an error names is not linked.
 * - A named link whose error is a validation error (an id HubSpot does not have, a type it refuses) is
 *   `rejected`: sending it again cannot help, it becomes a dead letter. One whose error looks passing
 *   (`INTERNAL_ERROR`, rate limits, locks, timeouts) is retried with backoff.
 * - An error that names no link leaves every unnamed link in doubt: they are retried too (creating an
 *   association that exists already changes nothing), never marked linked on a guess.
 * - Every other link is `linked`.
 */
export interface AssociationLink {
  readonly cartId: string;
  readonly contactId: string;
}

export interface LinkFailure<T> {
  readonly link: T;
  readonly reason: string;
  readonly category: string | undefined;
}

export interface AssociationSettlement<T> {
  readonly linked: T[];
  readonly rejected: LinkFailure<T>[];
  readonly retry: LinkFailure<T>[];
}

const PASSING = /RATE_?LIMIT|INTERNAL|TIMEOUT|LOCKED|UNAVAILABLE/i;
const CART_KEYS = ["fromObjectId", "fromObjectIds", "from"];
const CONTACT_KEYS = ["toObjectId", "toObjectIds", "to"];
const EITHER_KEYS = ["ids", "id"];

export function settleAssociations<T extends AssociationLink>(
  links: readonly T[],
  errors: readonly InputError[],
): AssociationSettlement<T> {
  const failed = new Map<T, LinkFailure<T> & { passing: boolean }>();
  let unattributed: InputError | undefined;
  for (const error of errors) {
    const carts = idsUnder(error, [...CART_KEYS, ...EITHER_KEYS]);
    const contacts = idsUnder(error, [...CONTACT_KEYS, ...EITHER_KEYS]);
    const named = links.filter((l) => carts.has(l.cartId) || contacts.has(l.contactId));
    if (named.length === 0) {
      unattributed ??= error;
      continue;
    }
    const passing = PASSING.test(error.category ?? "");
    for (const link of named) {
      // A validation error outweighs a passing one for the same link.
      const before = failed.get(link);
      if (before !== undefined && !before.passing) continue;
      failed.set(link, { link, reason: error.message, category: error.category, passing });
    }
  }
  const linked: T[] = [];
  const rejected: LinkFailure<T>[] = [];
  const retry: LinkFailure<T>[] = [];
  for (const link of links) {
    const failure = failed.get(link);
    if (failure !== undefined) {
      const { passing, ...rest } = failure;
      (passing ? retry : rejected).push(rest);
    } else if (unattributed !== undefined) {
      retry.push({ link, reason: unattributed.message, category: unattributed.category });
    } else {
      linked.push(link);
    }
  }
  return { linked, rejected, retry };
}

function idsUnder(error: InputError, keys: readonly string[]): Set<string> {
  return new Set(keys.flatMap((k) => error.context[k] ?? []));
}
