/** Assertions shared by the format tests and the fuzz harness. */
import * as assert from 'node:assert/strict';
import { InputError, LimitError } from '../../src/engine/errors';

/** Asserts `p` rejects with `type` (InputError by default), its one-line message naming `file` and matching `problem`. */
export async function rejectsWith(p: Promise<unknown>, file: string, problem: RegExp, type: typeof InputError | typeof LimitError = InputError): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.ok(e.message.startsWith(file), `message does not start with the file name ${file}: ${e.message}`);
    assert.match(e.message, problem);
    assert.ok(!e.message.includes('\n'), `message is not one line: ${e.message}`);
    return true;
  });
}
