// Waiting for the system to reach a state (polling; no timing is asserted).
/** Waits until `check` returns a truthy value (polling the database; no timing is asserted). */
export async function until<T>(check: () => Promise<T>, what: string, timeoutMs = 60_000): Promise<T> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

