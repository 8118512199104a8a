// Node fires a timer whose delay exceeds 2^31-1 ms (about 24.8 days) after 1 ms instead, with only a
// TimeoutOverflowWarning: a long interval turned into work done back to back. A long timeout here is a
// chain of timers, each within the limit, so it waits its whole time.

export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  clear(): void;
}

/** setTimeout for any delay (negative or NaN counts as 0). Unreferenced: it never keeps the process up. */
export function setLongTimeout(fn: () => void, ms: number): LongTimer {
  const due = Date.now() + (Number.isFinite(ms) ? Math.max(0, ms) : 0);
  let remaining = Number.isFinite(ms) ? Math.max(0, ms) : 0;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const leg = Math.min(remaining, MAX_TIMER_MS);
    timer = setTimeout(() => {
      remaining -= leg;
      // Time jumped (the clock, or a suspended machine): trust the wall clock over the legs counted.
      if (remaining > 0 && Date.now() < due) arm();
      else fn();
    }, leg);
    timer.unref?.();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
