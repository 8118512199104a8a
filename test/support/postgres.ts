// The embedded server is a runtime module (the demo starts one too); tests use the same code.
export { startEmbeddedPostgres, freePort, removeDataDir, postmasterPid, type RunningPostgres } from '../../sidecar/demo/postgres.js';
