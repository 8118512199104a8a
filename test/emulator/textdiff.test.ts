// Large text fields in change events go as data differences the way Salesforce sends them
// (emulator/textdiff.ts): a unified diff with the SHA-256 of the whole new value, only when it is worth it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { largeTextDiff } from '../../emulator/textdiff.js';

/** Applies a one-or-more-hunk unified diff (no context needed) to `before`, as a subscriber would. */
function patch(before: string, diff: string): string {
  const lines = before.split('\n');
  const body = diff.split('\n');
  expect(body[0]).toBe('--- ');
  expect(body[1]).toMatch(/^\+\+\+ [0-9a-f]{64}$/);
  const out: string[] = [];
  let at = 0;
  for (let i = 2; i < body.length; i++) {
    const m = /^@@ -(\d+),(\d+) \+(\d+),(\d+) @@$/.exec(body[i]);
    if (!m) continue;
    const start = Number(m[2]) === 0 ? Number(m[1]) : Number(m[1]) - 1;
    out.push(...lines.slice(at, start));
    at = start + Number(m[2]);
    for (let j = i + 1; j < body.length && !body[j].startsWith('@@'); j++) {
      if (body[j].startsWith('+')) out.push(body[j].slice(1));
    }
  }
  out.push(...lines.slice(at));
  return out.join('\n');
}

const text = (n: number, tag = '') => Array.from({ length: n }, (_, i) => `line ${i} of a long description, about sixty characters${tag}`).join('\n');

describe('large text fields as data differences', () => {
  it('one changed line of a long value: a unified diff that rebuilds the new value, with its SHA-256', () => {
    const before = text(40);
    const after = before.replace('line 17 of', 'line seventeen of');
    const diff = largeTextDiff(before, after)!;
    expect(diff).toBeDefined();
    expect(diff.length).toBeLessThan(after.length);
    expect(diff.split('\n')[1]).toBe(`+++ ${createHash('sha256').update(after).digest('hex')}`);
    expect(patch(before, diff)).toBe(after);
    // lines added at the end, and lines removed from the start
    const longer = `${before}\nan added line\nand another`;
    expect(patch(before, largeTextDiff(before, longer)!)).toBe(longer);
    const shorter = before.split('\n').slice(2).join('\n');
    expect(patch(before, largeTextDiff(before, shorter)!)).toBe(shorter);
  });

  it('the value goes whole when it is short, changes much, or the diff would not be shorter', () => {
    expect(largeTextDiff('short', 'short and changed')).toBeUndefined();                 // under 1,000 characters
    expect(largeTextDiff(text(20), text(40))).toBeUndefined();                           // length changes by more than 50%
    expect(largeTextDiff(text(40), text(40, '!'))).toBeUndefined();                      // every line changed
    const before = text(40);
    // 11 of 40 lines changed: 22 of the 80 lines before and after, more than 25%; 10 of 40 (20 of 80) may go as a diff
    expect(largeTextDiff(before, before.replace(/line ([0-9]|10) of/g, 'LINE of'))).toBeUndefined();
    const ten = before.replace(/line [0-9] of/g, 'LINE of');
    expect(patch(before, largeTextDiff(before, ten)!)).toBe(ten);
    expect(largeTextDiff(before, before)).toBeUndefined();
    expect(largeTextDiff(null, before)).toBeUndefined();
  });
});
