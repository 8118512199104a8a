// The Salesforce emulator in a process of its own (forked by bench/lib/emulator.ts): Salesforce is another
// machine in production, so it must not share the benchmark's or the sidecar's event loop, and its memory
// is then measurable on its own. Answers the parent's questions over IPC, spending no API calls.

interface Emulator {
  url: string;
  credentials: { loginUrl: string; clientId: string; clientSecret: string; username: string; password: string };
  pubsubEndpoint?: string;
  certificate?: string;
  stats(): unknown;
  records(object: string): Record<string, unknown>[];
  stop(): Promise<void>;
}
// Imported by URL: the emulator is a separate program (emulator/index.ts) that imports nothing of ours.
const { startEmulator } = (await import(new URL('../../emulator/index.js', import.meta.url).href)) as {
  startEmulator(o: Record<string, unknown>): Promise<Emulator>;
};

type Msg = { id: number; op: 'stats' | 'find' | 'count' | 'countWhere' | 'waitFor' | 'memory' | 'stop';
  object?: string;
  field?: string;
  value?: unknown;
  timeoutMs?: number;
};

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
const now = () => performance.timeOrigin + performance.now();

/**
 * Resolves with the moment (this process's clock) a record with field = value is first seen: checked at
 * once, then every millisecond. This is "visible in Salesforce" without spending an API call.
 */
function waitFor(object: string, field: string, value: unknown, timeoutMs: number): Promise<{ at: number; record: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const deadline = now() + timeoutMs;
    const check = (): boolean => {
      const record = all(object).find((r) => r[field] === value);
      if (record) resolve({ at: now(), record });
      else if (now() > deadline) reject(new Error(`no ${object} with ${field} = ${String(value)} after ${timeoutMs} ms`));
      else return false;
      return true;
    };
    if (check()) return;
    const timer = setInterval(() => {
      if (check()) clearInterval(timer);
    }, 1);
  });
}

const emu = await startEmulator({});

function all(object: string): Record<string, unknown>[] {
  return emu.records(object);
}

process.on('message', async (m: Msg) => {
  try {
    let result: unknown;
    switch (m.op) {
      case 'stats':
        result = await emu.stats();
        break;
      case 'find':
        result = all(m.object!).find((r) => r[m.field!] === m.value) ?? null;
        break;
      case 'count':
        result = all(m.object!).length;
        break;
      case 'waitFor':
        result = await waitFor(m.object!, m.field!, m.value, m.timeoutMs ?? 30_000);
        break;
      case 'countWhere':
        result = all(m.object!).filter((r) => typeof r[m.field!] === 'string' && (r[m.field!] as string).startsWith(String(m.value))).length;
        break;
      case 'memory': {
        const gc = (globalThis as { gc?: () => void }).gc;
        gc?.();
        gc?.();
        const m = process.memoryUsage();
        result = { heapUsedMiB: Math.round(m.heapUsed / 2 ** 20), rssMiB: Math.round(m.rss / 2 ** 20) };
        break;
      }
      case 'stop':
        await emu.stop();
        process.send!({ id: m.id, result: null }, () => process.exit(0));
        return;
    }
    process.send!({ id: m.id, result });
  } catch (e) {
    process.send!({ id: m.id, error: (e as Error).message });
  }
});

process.send!({ ready: true, url: emu.url, credentials: emu.credentials, pubsub: emu.pubsubEndpoint && emu.certificate ? { endpoint: emu.pubsubEndpoint, certificate: emu.certificate } : undefined });
