/**
 * Holds the embedded store's calls while the checkpoint thread works (its flag, sqlite-checkpointer.ts), so
 * the event loop never sleeps in SQLite's busy handler behind a checkpoint that has the write lock: a call
 * made meanwhile waits on a 1 ms timer instead, and the calls held run in the order they were made, one per
 * turn of the loop (each holds the loop for its statements: run back to back, the batches and sender calls
 * a checkpoint held would make one long task, with webhook answers waiting behind it). A call made when no
 * checkpoint runs (and none is held) goes straight through, in the same turn.
 */
export function createCheckpointGate(busy: Int32Array): <T>(call: () => Promise<T>) => Promise<T> {
  const held: (() => void)[] = [];
  let waiting: NodeJS.Timeout | NodeJS.Immediate | undefined;
  const free = (): boolean => Atomics.load(busy, 0) === 0;

  function release(): void {
    waiting = undefined;
    if (held.length > 0 && free()) (held.shift() as () => void)();
    if (held.length > 0) waiting = free() ? setImmediate(release) : setTimeout(release, 1);
  }

  return <T>(call: () => Promise<T>): Promise<T> => {
    if (held.length === 0 && free()) return call();
    return new Promise<T>((resolve, reject) => {
      held.push(() => {
        call().then(resolve, reject);
      });
      waiting ??= setTimeout(release, 1);
    });
  };
}

/**
 * `target` with every method (and every method of its object properties) passed through `gate`, but for
 * the synchronous ones named in `direct`.
 */
export function gateMethods<T extends object>(
  target: T,
  gate: <R>(call: () => Promise<R>) => Promise<R>,
  direct: ReadonlySet<string> = new Set(),
): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(target)) {
    if (direct.has(name)) {
      out[name] = value;
    } else if (typeof value === "function") {
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      out[name] = (...args: unknown[]) => gate(() => fn.apply(target, args));
    } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      out[name] = gateMethods(value as object, gate, direct);
    } else {
      out[name] = value;
    }
  }
  return out as T;
}
