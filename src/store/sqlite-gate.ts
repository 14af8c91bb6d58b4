/**
 * Every call to the embedded store goes through here and runs in a turn of the loop of its own, one call
 * per turn, in the order made. node:sqlite is synchronous, so a store call holds the event loop for all its
 * statements: run in its caller's task, the caller's other work (a sender's answer handling, the next
 * claim) and other calls would make one long task with webhook answers waiting behind it; run a turn
 * later, the answers whose I/O came meanwhile go first.
 *
 * It also holds calls while the checkpoint thread works (its flag, sqlite-checkpointer.ts), so the event
 * loop never sleeps in SQLite's busy handler behind a checkpoint that has the write lock: the calls wait on
 * a 1 ms timer instead.
 */
export function createCheckpointGate(busy: Int32Array): <T>(call: () => Promise<T>) => Promise<T> {
  const held: (() => void)[] = [];
  let waiting: NodeJS.Timeout | NodeJS.Immediate | undefined;
  const free = (): boolean => Atomics.load(busy, 0) === 0;
  const next = (): NodeJS.Timeout | NodeJS.Immediate =>
    free() ? setImmediate(release) : setTimeout(release, 1);

  function release(): void {
    waiting = undefined;
    if (held.length > 0 && free()) (held.shift() as () => void)();
    if (held.length > 0) waiting = next();
  }

  return <T>(call: () => Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      held.push(() => {
        call().then(resolve, reject);
      });
      waiting ??= next();
    });
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
