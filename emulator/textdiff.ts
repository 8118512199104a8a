// Data differences in change events, as Salesforce sends them ("Sending Data Differences for Fields of
// Updated Records", Change Data Capture Developer Guide): an UPDATE of a large text field (a textarea:
// Description, a Long Text Area) may carry a unified diff of its lines instead of the new value, with the
// SHA-256 of the whole new value after `+++ `, and name the field in the header's diffFields. Pub/Sub
// carries the diff as the field's value; CometD as {"diff": "..."}. No diff is sent, the value goes
// whole, when:
//   - the new value is shorter than 1,000 characters;
//   - the old and new values differ in length by more than 50%;
//   - more than 25% of the lines of the old and new values together are changed;
//   - the diff would be longer than the new value.
// The diff here is one hunk: the lines between the common first and last lines, without context lines
// (a valid unified diff; Salesforce's may split it into several hunks).
import { createHash } from 'node:crypto';

export function largeTextDiff(before: unknown, after: unknown): string | undefined {
  if (typeof before !== 'string' || typeof after !== 'string' || before === after) return undefined;
  if (after.length < 1000) return undefined;
  if (Math.abs(after.length - before.length) > before.length * 0.5) return undefined;
  const a = before.split('\n');
  const b = after.split('\n');
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const removed = a.slice(head, a.length - tail);
  const added = b.slice(head, b.length - tail);
  if ((removed.length + added.length) * 4 > a.length + b.length) return undefined;
  // Unified diff ranges: start line (1-based; the line before the hunk when it is empty) and line count.
  const range = (start: number, count: number) => `${count === 0 ? start : start + 1},${count}`;
  const hash = createHash('sha256').update(after, 'utf8').digest('hex');
  const diff = [`--- `, `+++ ${hash}`, `@@ -${range(head, removed.length)} +${range(head, added.length)} @@`,
    ...removed.map((l) => `-${l}`), ...added.map((l) => `+${l}`)].join('\n') + '\n';
  return diff.length > after.length ? undefined : diff;
}
