// What bad-input tests check of every refusal: an InputError whose message is one line, starting with the
// file and "offset N:" (src/common/errors.ts; README "Exit codes").
import { expect } from 'vitest';
import { InputError } from '../../src/common/errors.js';

/** Run fn, expect it to throw such an InputError about `file`, and return the message. */
export function inputErrorAt(file: string, fn: () => unknown): string {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InputError);
  const msg = (err as Error).message;
  expect(msg).not.toContain('\n');
  expect(msg.startsWith(`${file}: offset `)).toBe(true);
  return msg;
}
