// The migrations ship inside the build: dist/sql mirrors sql/ so the migrator finds them
// at the same relative place (../../sql from sidecar/db) in source and in dist.
import { cpSync, rmSync } from 'node:fs';
rmSync('dist/sql', { recursive: true, force: true });
cpSync('sql', 'dist/sql', { recursive: true });
// `npx hcsync` runs dist/sidecar/cli.js (package.json bin): it must be executable (its shebang is node).
import { chmodSync, existsSync } from 'node:fs';
if (existsSync('dist/sidecar/cli.js')) chmodSync('dist/sidecar/cli.js', 0o755);
