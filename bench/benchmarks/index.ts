// Every benchmark, in the order `make bench` runs them and the table shows them (issue 7's numbering).
import type { Benchmark } from '../lib/bench.js';
import { appLockWaits } from './app-lock-waits.js';
import { capture } from './capture.js';
import { captureProfile } from './capture-profile.js';
import { emulatorCeiling } from './emulator.js';
import { idle } from './idle.js';
import { inboundBurst } from './inbound-burst.js';
import { inboundLatency } from './inbound-latency.js';
import { initialLoad } from './initial-load.js';
import { outboundLatency } from './outbound-latency.js';
import { outboundThroughput, outboundThroughputCdc, outboundThroughputMerged } from './outbound-throughput.js';

export const benchmarks: Benchmark[] = [outboundLatency, inboundLatency, inboundBurst, initialLoad, outboundThroughput, outboundThroughputCdc, outboundThroughputMerged, appLockWaits, capture, captureProfile, idle, emulatorCeiling];
