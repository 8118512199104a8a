// The migrations ship inside the build: dist/sql mirrors sql/ so the migrator finds them
// at the same relative place (../../sql from sidecar/db) in source and in dist.
import { cpSync, rmSync } from 'node:fs';
rmSync('dist/sql', { recursive: true, force: true });
cpSync('sql', 'dist/sql', { recursive: true });
