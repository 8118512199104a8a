// `hcsync emulator [--port N] [--org FILE] [--seed Account=1000,Contact=5000] [--state FILE]`
import { pathToFileURL } from 'node:url';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { startEmulator } from './index.js';

function parseSeed(s: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || !Number.isInteger(n) || n < 0) throw new Error(`--seed: expected Object=count, got "${part}"`);
    out[k] = n;
  }
  return out;
}

export async function runEmulatorCli(argv: string[]): Promise<void> {
  const cmd = new Command('emulator')
    .description('Salesforce org emulator: REST, Bulk 2.0, OAuth and Change Data Capture on one port')
    .option('--port <n>', 'port to listen on (0 = any free port)', '0')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option('--org <file>', 'org definition JSON (default: the built-in org)')
    .option('--seed <counts>', 'records to generate, e.g. Account=1000,Contact=5000')
    .option('--state <file>', 'load org data from FILE at start (if it exists), save it there on exit')
    .option('--latency <ms>', 'added latency per API call', '0')
    .option('--https-port <n>', 'also serve over HTTPS on this port (0 = any free port), with a self-signed certificate made at start')
    .option('--pubsub-port <n>', 'port of the Pub/Sub API (TLS gRPC, self-signed certificate made at start; 0 = any free port)', '0')
    .exitOverride();
  cmd.parse(argv, { from: 'user' });
  const o = cmd.opts<{ port: string; host: string; org?: string; seed?: string; state?: string; latency: string; httpsPort?: string; pubsubPort: string }>();
  const emu = await startEmulator({ port: Number(o.port), host: o.host, org: o.org, seed: o.seed ? parseSeed(o.seed) : undefined, stateFile: o.state, latencyMs: Number(o.latency),
    httpsPort: o.httpsPort === undefined ? undefined : Number(o.httpsPort), pubsubPort: Number(o.pubsubPort) });
  const c = emu.credentials;
  const lines = [
    `export SF_LOGIN_URL=${c.loginUrl}`,
    `export SF_CLIENT_ID=${c.clientId}`,
    `export SF_CLIENT_SECRET=${c.clientSecret}`,
    // hcsync signs in by client credentials with these (it would infer the username-password flow, which
    // Salesforce retires, from SF_USERNAME and SF_PASSWORD); those two stay for clients that need a user.
    `export SF_AUTH=client_credentials`,
    `export SF_USERNAME=${c.username}`,
    `export SF_PASSWORD=${c.password}`,
  ];
  if (emu.httpsUrl) lines.push(`export SF_HTTPS_URL=${emu.httpsUrl}`);
  if (emu.pubsubEndpoint) lines.push(`export SF_PUBSUB_ENDPOINT=${emu.pubsubEndpoint}`);
  let certFile: string | undefined;
  if (emu.certificate) {
    // Node clients (jsforce, the sf CLI) trust the certificate through NODE_EXTRA_CA_CERTS, read at their start;
    // gRPC clients take the same file as their root certificate (or turn verification off).
    certFile = join(tmpdir(), `hcsync-emulator-${new URL(emu.url).port}.pem`);
    writeFileSync(certFile, emu.certificate);
    lines.push(`export NODE_EXTRA_CA_CERTS=${certFile}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  process.stderr.write(`# Salesforce emulator listening on ${emu.url} (admin API: ${emu.url}/__emulator/stats). Ctrl-C to stop.\n`);
  await new Promise<void>((resolve) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await emu.stop();
  // (the exports printed above name it for this run only)
  if (certFile) rmSync(certFile, { force: true });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runEmulatorCli(process.argv.slice(2)).then(() => process.exit(0), (e) => { process.stderr.write(`${(e as Error).message}\n`); process.exit(1); });
}
