import { createSleeper } from "./pacing.ts";

/**
 * The loop every sender lane runs: one step after another while running; a step that throws is logged and
 * the loop sleeps a second before the next. A step waits with `sleep`, which `interrupt` cuts short (new
 * work, a finished batch, a resume, shutdown).
 */
export interface LaneLoop {
  readonly sleep: (ms: number) => Promise<void>;
  readonly interrupt: () => void;
  readonly running: boolean;
  /** Starts the loop (once; a second call while running does nothing). */
  start(step: () => Promise<void>): void;
  /** The loop ends after the current step. */
  end(): void;
  /** Resolves when the loop has ended. */
  done(): Promise<void>;
  /** Ends the loop, cuts its sleep short and waits for it at most `ms`. */
  stopWithin(ms: number): Promise<void>;
}

export function createLaneLoop(onStepError: (error: unknown) => void): LaneLoop {
  const { sleep, interrupt } = createSleeper();
  let running = false;
  let loopDone: Promise<void> = Promise.resolve();

  async function loop(step: () => Promise<void>): Promise<void> {
    while (running) {
      try {
        await step();
      } catch (error) {
        onStepError(error);
        await sleep(1000);
      }
    }
  }

  return {
    sleep,
    interrupt,
    get running() {
      return running;
    },
    start(step) {
      if (running) return;
      running = true;
      loopDone = loop(step);
    },
    end() {
      running = false;
    },
    done: () => loopDone,
    async stopWithin(ms) {
      running = false;
      interrupt();
      await Promise.race([loopDone, new Promise((r) => setTimeout(r, ms).unref())]);
    },
  };
}
