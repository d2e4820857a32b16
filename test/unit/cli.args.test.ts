/**
 * The CLI's argument parser (src/cli/args.ts), on the cases that made it keep its own parser
 * instead of node:util.parseArgs: a negative number is a value, a repeat is an error.
 */
import assert from 'node:assert/strict';
import { intList, parseArgs, UsageError } from '../../src/cli/args';

const SPEC = { 'states-at': { value: true }, out: { value: true }, json: { value: false } } as const;

describe('cli argument parser', () => {
  it('takes a value that starts with a dash: --states-at -1 is the last token', () => {
    const args = parseArgs(['--states-at', '-1', '--json'], SPEC);
    assert.deepEqual(intList(args, 'states-at'), [-1]);
    assert.equal(args.get('json'), true);
  });

  it('refuses an option given twice, an unknown one, a missing value and a value on a flag', () => {
    const refused = (argv: string[], message: RegExp) => assert.throws(() => parseArgs(argv, SPEC), (e: unknown) => e instanceof UsageError && message.test(e.message));
    refused(['--out', 'a', '--out', 'b'], /^--out given twice$/);
    refused(['--outt', 'a'], /^unknown option --outt$/);
    refused(['--out', '--json'], /^--out needs a value$/);
    refused(['--json=yes'], /^--json takes no value$/);
    refused(['stray'], /^unexpected argument "stray"$/);
  });
});
