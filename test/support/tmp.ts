// Temporary folders for a test file, removed when the file's tests are done (runs left hcsync-*
// folders behind in the temp directory).
import { afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new folder named hcsync-<what>-…, removed after the file's last test. Call at the file's top level. */
export function tempDir(what: string): string {
  const dir = mkdtempSync(join(tmpdir(), `hcsync-${what}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
