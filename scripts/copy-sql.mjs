// The migrations ship inside the build: dist/sql mirrors sql/ so the migrator finds them
// at the same relative place (../../sql from sidecar/db) in source and in dist.
import { cpSync, rmSync } from 'node:fs';
rmSync('dist/sql', { recursive: true, force: true });
cpSync('sql', 'dist/sql', { recursive: true });
// `npx hcsync` runs dist/sidecar/bin.js (package.json bin), which runs cli.js: both must be executable
// (their shebang is node).
import { chmodSync, existsSync } from 'node:fs';
for (const f of ['dist/sidecar/bin.js', 'dist/sidecar/cli.js']) if (existsSync(f)) chmodSync(f, 0o755);
// The dashboard's page, script and style are served from dist/sidecar/http/ui (sidecar/http/api.ts).
rmSync('dist/sidecar/http/ui', { recursive: true, force: true });
cpSync('sidecar/http/ui', 'dist/sidecar/http/ui', { recursive: true });
