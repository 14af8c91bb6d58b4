/**
 * What a measure opened (child processes, servers, timers), closed in reverse order when the measure ends,
 * whether it succeeded or threw. Closing goes on past a failing close and reports the first error after.
 */
export interface Scope {
  defer(close: () => Promise<void> | void): void;
  close(): Promise<void>;
}

export function createScope(): Scope {
  const closers: Array<() => Promise<void> | void> = [];
  return {
    defer(close) {
      closers.push(close);
    },
    async close() {
      let first: Error | undefined;
      for (const close of closers.splice(0).reverse()) {
        try {
          await close();
        } catch (error) {
          first ??= error instanceof Error ? error : new Error("a close failed", { cause: error });
        }
      }
      if (first !== undefined) throw first;
    },
  };
}

/** Runs `fn` with a fresh scope and closes it afterwards, even when `fn` throws. */
export async function withScope<T>(fn: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = createScope();
  try {
    return await fn(scope);
  } finally {
    await scope.close();
  }
}
