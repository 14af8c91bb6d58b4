/**
 * Refused webhook deliveries (401: no valid HMAC), counted per minute for the last day. The shop header of
 * a refused delivery is not trusted, so they are counted for the whole bridge, not per shop. In memory and
 * per process: a refusal is never written to the store (an attacker could otherwise make us write at will).
 */
export interface RefusalCounter {
  record(nowMs: number): void;
  counts(nowMs: number): { lastHour: number; lastDay: number; lastAtMs: number | undefined };
}

const MINUTE_MS = 60_000;
const MINUTES_KEPT = 24 * 60;

export function createRefusalCounter(): RefusalCounter {
  const minutes = new Map<number, number>();
  let lastAtMs: number | undefined;

  const prune = (nowMinute: number): void => {
    for (const m of minutes.keys()) if (m <= nowMinute - MINUTES_KEPT) minutes.delete(m);
  };

  return {
    record(nowMs) {
      const minute = Math.floor(nowMs / MINUTE_MS);
      minutes.set(minute, (minutes.get(minute) ?? 0) + 1);
      lastAtMs = nowMs;
      if (minutes.size > MINUTES_KEPT) prune(minute);
    },
    counts(nowMs) {
      const nowMinute = Math.floor(nowMs / MINUTE_MS);
      prune(nowMinute);
      let lastHour = 0;
      let lastDay = 0;
      for (const [m, n] of minutes) {
        lastDay += n;
        if (m > nowMinute - 60) lastHour += n;
      }
      return { lastHour, lastDay, lastAtMs };
    },
  };
}
