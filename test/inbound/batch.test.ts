// How the reader cuts its queue of change events into applies (one transaction each).
import { describe, expect, it } from 'vitest';
import { batchLength, APPLY_RECORDS } from '../../sidecar/sync/inbound/mapping.js';
import type { ChangeEvent } from '../../sidecar/salesforce/streaming.js';

const ev = (ids: number): ChangeEvent =>
  ({ header: { changeType: 'UPDATE', recordIds: Array.from({ length: ids }, (_, i) => `001${i}`) } }) as unknown as ChangeEvent;

describe('change event batches', () => {
  it('a catch-up of folded events (200 records each) is applied in pieces of at most APPLY_RECORDS rows', () => {
    // 10,000 rows updated by one Salesforce call arrive as 50 events of 200 records: one apply of all of
    // them held 10,000 row locks for seconds while the writer and the application waited.
    const queue = Array.from({ length: 50 }, () => ev(200));
    const sizes: number[] = [];
    while (queue.length) sizes.push(queue.splice(0, batchLength(queue)).length);
    expect(sizes).toEqual(Array(10).fill(APPLY_RECORDS / 200));
  });

  it('single-record events still go 200 at a time, and an event larger than the cap is never split', () => {
    expect(batchLength(Array.from({ length: 500 }, () => ev(1)), 1000)).toBe(200);
    expect(batchLength([ev(5000), ev(1)], 1000)).toBe(1);
    expect(batchLength([ev(0), ev(0)], 1000)).toBe(2); // GAP_OVERFLOW carries no ids
    expect(batchLength([], 1000)).toBe(0);
  });
});
