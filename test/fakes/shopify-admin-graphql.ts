/**
 * Just enough GraphQL for the Shopify Admin sandbox: parses one query document into a selection tree,
 * computes Shopify's requested and actual cost from it, and projects stored nodes onto the selection (a
 * client gets only the fields it asked for, as from the real API).
 *
 * Cost rules (shopify.dev, "API rate limits"): a scalar costs 0, an object 1, a connection 2 plus `first`
 * times the cost of one node; `pageInfo` is free. Actual cost counts the nodes really returned.
 */

export interface Field {
  readonly name: string;
  readonly alias: string | undefined;
  readonly args: Readonly<Record<string, unknown>>;
  readonly selections: readonly Field[] | undefined;
}

export interface ParsedQuery {
  readonly fields: readonly Field[];
}

type Token = { kind: "name" | "punct" | "string" | "number" | "variable"; text: string };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const pattern =
    /\s+|,|#[^\n]*|("(?:[^"\\]|\\.)*")|(\$[A-Za-z_][A-Za-z0-9_]*)|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([{}():![\]=])/gy;
  let match: RegExpExecArray | null;
  while (pattern.lastIndex < source.length && (match = pattern.exec(source)) !== null) {
    if (match[1] !== undefined) tokens.push({ kind: "string", text: JSON.parse(match[1]) as string });
    else if (match[2] !== undefined) tokens.push({ kind: "variable", text: match[2].slice(1) });
    else if (match[3] !== undefined) tokens.push({ kind: "number", text: match[3] });
    else if (match[4] !== undefined) tokens.push({ kind: "name", text: match[4] });
    else if (match[5] !== undefined) tokens.push({ kind: "punct", text: match[5] });
  }
  if (pattern.lastIndex < source.length) throw new Error(`unexpected character at ${pattern.lastIndex}`);
  return tokens;
}

/** Parses `query Name($v: Type) { … }` or `{ … }`; variables are substituted into arguments. */
export function parseQuery(source: string, variables: Readonly<Record<string, unknown>>): ParsedQuery {
  const tokens = tokenize(source);
  let at = 0;
  const peek = (): Token | undefined => tokens[at];
  const take = (text?: string): Token => {
    const token = tokens[at++];
    if (token === undefined || (text !== undefined && token.text !== text)) {
      throw new Error(`expected ${text ?? "a token"} but found ${token?.text ?? "the end"}`);
    }
    return token;
  };
  if (peek()?.text === "query") {
    take();
    if (peek()?.kind === "name") take();
    if (peek()?.text === "(") {
      // Variable definitions: skipped (values come from `variables`).
      while (take().text !== ")");
    }
  }
  const value = (): unknown => {
    const token = take();
    if (token.kind === "variable") return variables[token.text];
    if (token.kind === "string") return token.text;
    if (token.kind === "number") return Number(token.text);
    if (token.text === "true" || token.text === "false") return token.text === "true";
    if (token.text === "null") return null;
    if (token.text === "[") {
      const list: unknown[] = [];
      while (peek()?.text !== "]") list.push(value());
      take("]");
      return list;
    }
    if (token.kind === "name") return token.text; // an enum value (sortKey: ID)
    throw new Error(`unexpected ${token.text} in arguments`);
  };
  const selectionSet = (): Field[] => {
    take("{");
    const fields: Field[] = [];
    while (peek()?.text !== "}") {
      let name = take().text;
      let alias: string | undefined;
      if (peek()?.text === ":") {
        take();
        alias = name;
        name = take().text;
      }
      const args: Record<string, unknown> = {};
      if (peek()?.text === "(") {
        take();
        while (peek()?.text !== ")") {
          const arg = take().text;
          take(":");
          args[arg] = value();
        }
        take(")");
      }
      const selections = peek()?.text === "{" ? selectionSet() : undefined;
      fields.push({ name, alias, args, selections });
    }
    take("}");
    return fields;
  };
  const fields = selectionSet();
  if (at !== tokens.length) throw new Error("unexpected text after the query");
  return { fields };
}

const FREE_OBJECTS = new Set(["pageInfo", "extensions"]);

/** The cost of one selected field when every connection returns `first` nodes. */
export function requestedCost(field: Field): number {
  if (field.selections === undefined || FREE_OBJECTS.has(field.name)) return 0;
  const first = field.args["first"];
  if (typeof first === "number") return 2 + first * nodeCost(field.selections, requestedCost);
  return 1 + sum(field.selections.map(requestedCost));
}

/** Cost of one node of a connection: its `nodes { … }` or `edges { node { … } }` selection. */
function nodeCost(selections: readonly Field[], cost: (f: Field) => number): number {
  let total = 0;
  for (const s of selections) {
    if (s.name === "nodes") total += 1 + sum((s.selections ?? []).map(cost));
    else if (s.name === "edges")
      total += sum(
        (s.selections ?? []).map((e) => (e.name === "node" ? 1 + sum((e.selections ?? []).map(cost)) : 0)),
      );
  }
  return total;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/**
 * Projects `value` (a stored node, GraphQL field names; connections stored as arrays) onto `selections`,
 * adding up the actual cost.
 */
export function project(value: unknown, selections: readonly Field[], cost: { actual: number }): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((v) => project(v, selections, cost));
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field of selections) {
    const key = field.alias ?? field.name;
    const stored = source[field.name];
    if (field.selections === undefined) {
      out[key] = stored ?? null;
      continue;
    }
    const first = field.args["first"];
    if (Array.isArray(stored) && typeof first === "number") {
      const page = stored.slice(0, first);
      cost.actual += 2;
      out[key] = projectConnection(page, stored.length > first, field.selections, cost);
      continue;
    }
    if (stored !== null && stored !== undefined) cost.actual += 1;
    out[key] = project(stored, field.selections, cost);
  }
  return out;
}

/** A connection answer for `nodes` already cut to the page: nodes, edges, pageInfo as selected. */
export function projectConnection(
  nodes: readonly { node: unknown; cursor: string }[] | readonly unknown[],
  hasNextPage: boolean,
  selections: readonly Field[],
  cost: { actual: number },
): Record<string, unknown> {
  const items = nodes.map((n) =>
    typeof n === "object" && n !== null && "cursor" in n && "node" in n
      ? (n as { node: unknown; cursor: string })
      : { node: n, cursor: "" },
  );
  const out: Record<string, unknown> = {};
  for (const field of selections) {
    const key = field.alias ?? field.name;
    const sel = field.selections ?? [];
    if (field.name === "nodes") {
      out[key] = items.map((i) => {
        cost.actual += 1;
        return project(i.node, sel, cost);
      });
    } else if (field.name === "edges") {
      out[key] = items.map((i) => {
        const edge: Record<string, unknown> = {};
        for (const e of sel) {
          if (e.name === "cursor") edge[e.alias ?? e.name] = i.cursor;
          else if (e.name === "node") {
            cost.actual += 1;
            edge[e.alias ?? e.name] = project(i.node, e.selections ?? [], cost);
          }
        }
        return edge;
      });
    } else if (field.name === "pageInfo") {
      const info: Record<string, unknown> = {
        hasNextPage,
        hasPreviousPage: false,
        endCursor: items.at(-1)?.cursor || null,
        startCursor: items[0]?.cursor || null,
      };
      out[key] = Object.fromEntries(sel.map((f) => [f.alias ?? f.name, info[f.name] ?? null]));
    }
  }
  return out;
}
