/**
 * The restricted unpickler (src/engine/formats/pickle.ts) on hand-built pickles: every allowed
 * opcode builds what Python's pickle would, and every other opcode, every global off the
 * allowlist and every misuse of an allowed one is refused by name.
 */
import * as assert from 'node:assert/strict';
import { InputError } from '../../src/engine/errors';
import { PickleFault, PyDict, PyList, PySet, PyTuple, TruncatedPickleError, unpickle, type GlobalHandler, type PyValue } from '../../src/engine/formats/pickle';
import { concat, pickle, pk } from '../fuzz/builders';

const calls: PyValue[][] = [];
const GLOBALS = new Map<string, GlobalHandler>([
  ['test.f', { call: (args) => (calls.push([...args]), 'called') }],
  ['test.C', { construct: (args) => ({ constructedWith: args.length }) }],
  ['test.strict', { call: () => { throw new PickleFault('strict takes nothing'); } }],
  ['test.tag', {}],
]);

function load(bytes: Uint8Array, persistentLoad?: (pid: PyValue) => PyValue): PyValue {
  return unpickle(bytes, 0, { source: 'x.pkl', label: 'data.pkl', globals: GLOBALS, persistentLoad }).value;
}

function refuses(bytes: Uint8Array, problem: RegExp, type: typeof InputError = InputError): void {
  assert.throws(() => load(bytes), (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    assert.ok(e.message.startsWith('x.pkl: data.pkl, byte '), e.message);
    assert.match(e.message, problem);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
}

/** Plain JS of a value, to compare with deepEqual. */
function plain(v: PyValue): unknown {
  if (v instanceof PyTuple) return { tuple: v.items.map(plain) };
  if (v instanceof PyList) return v.items.map(plain);
  if (v instanceof PyDict) return Object.fromEntries([...v.items].map(([k, x]) => [String(k), plain(x)]));
  if (v instanceof PySet) return 'set()';
  return v;
}

describe('formats: the restricted unpickler', () => {
  it('builds scalars: NONE, NEWTRUE/NEWFALSE, BININT/BININT1/BININT2, LONG1, BINFLOAT, BINUNICODE, SHORT_BINSTRING', () => {
    const v = load(pickle(
      pk.proto(2), pk.mark, pk.none, pk.newTrue, pk.newFalse, pk.int(-5), pk.int(200), pk.int(60000), pk.int(2 ** 31 - 1),
      pk.long1(-1n), pk.long1(2n ** 64n), pk.long1(0x1950a86a20f9469cfc6cn), pk.float(-0.25), pk.str('é漢🙂'), pk.shortBinstring('py2'), pk.tuple, pk.stop,
    ));
    assert.deepEqual(plain(v), { tuple: [null, true, false, -5, 200, 60000, 2 ** 31 - 1, -1, 2n ** 64n, 0x1950a86a20f9469cfc6cn, -0.25, 'é漢🙂', 'py2'] });
  });

  it('builds containers: EMPTY_TUPLE/LIST/DICT/SET, TUPLE1/2/3, MARK + TUPLE, APPEND(S), SETITEM(S)', () => {
    const v = load(pickle(
      pk.proto(2), pk.emptyDict,
      pk.str('t'), pk.mark, pk.int(1), pk.int(2), pk.int(3), pk.int(4), pk.tuple, pk.setitem,
      pk.mark, pk.str('t0'), pk.emptyTuple, pk.str('t1'), pk.int(1), pk.tuple1, pk.str('t2'), pk.int(1), pk.int(2), pk.tuple2, pk.str('t3'), pk.int(1), pk.int(2), pk.int(3), pk.tuple3,
      pk.str('l'), pk.emptyList, pk.int(7), pk.append, pk.mark, pk.int(8), pk.int(9), pk.appends, pk.str('s'), pk.emptySet, pk.setitems, pk.stop,
    ));
    assert.deepEqual(plain(v), { t: { tuple: [1, 2, 3, 4] }, t0: { tuple: [] }, t1: { tuple: [1] }, t2: { tuple: [1, 2] }, t3: { tuple: [1, 2, 3] }, l: [7, 8, 9], s: 'set()' });
  });

  it('shares memoized objects: BINPUT/LONG_BINPUT and BINGET/LONG_BINGET push the same object', () => {
    const v = load(pickle(pk.proto(2), pk.mark, pk.emptyList, pk.binput(3), pk.emptyDict, pk.longBinput(70000), pk.binget(3), pk.longBinget(70000), pk.tuple, pk.stop)) as PyTuple;
    assert.ok(v.items[0] instanceof PyList && v.items[1] instanceof PyDict);
    assert.equal(v.items[2], v.items[0]);
    assert.equal(v.items[3], v.items[1]);
  });

  it('REDUCE and NEWOBJ apply only the allowlisted handlers; BUILD sets a dict attributes; BINPERSID asks the loader', () => {
    calls.length = 0;
    const v = load(pickle(pk.proto(2), pk.global('test', 'f'), pk.mark, pk.int(1), pk.str('a'), pk.tuple, pk.reduce, pk.global('test', 'C'), pk.emptyTuple, pk.newobj, pk.tuple2, pk.stop)) as PyTuple;
    assert.deepEqual(calls, [[1, 'a']]);
    assert.deepEqual(v.items, ['called', { constructedWith: 0 }]);
    const d = load(pickle(pk.proto(2), pk.emptyDict, pk.str('k'), pk.int(1), pk.setitem, pk.emptyDict, pk.str('_metadata'), pk.str('m'), pk.setitem, pk.build, pk.stop)) as PyDict;
    assert.deepEqual([...d.items], [['k', 1]]);
    assert.deepEqual([...d.attributes], [['_metadata', 'm']]);
    const seen: PyValue[] = [];
    assert.equal(load(pickle(pk.proto(2), pk.str('key'), pk.binpersid, pk.stop), (pid) => (seen.push(pid), 'loaded')), 'loaded');
    assert.deepEqual(seen, ['key']);
  });

  it('returns where the pickle ended, for files that hold several in a row', () => {
    const two = pickle(pk.proto(2), pk.int(1), pk.stop, pk.proto(2), pk.int(2), pk.stop);
    const first = unpickle(two, 0, { source: 'x', label: 'p', globals: GLOBALS });
    assert.deepEqual([first.value, first.end], [1, 5]);
    assert.equal(unpickle(two, first.end, { source: 'x', label: 'p', globals: GLOBALS }).value, 2);
  });

  describe('refuses every global off the allowlist by its "module.name", before anything is built', () => {
    for (const [module, name] of [['posix', 'system'], ['os', 'system'], ['builtins', 'eval'], ['__builtin__', 'eval'], ['builtins', 'exec'], ['subprocess', 'Popen'], ['torch', 'load'], ['collections', 'defaultdict'], ['torch._utils', '_rebuild_tensor']]) {
      it(`${module}.${name}`, () => {
        calls.length = 0;
        refuses(pickle(pk.proto(2), pk.global(module, name), pk.str('touch /tmp/x'), pk.tuple1, pk.reduce, pk.stop), new RegExp(`byte 2 \\(GLOBAL\\): forbidden global ${module.replace(/\./g, '\\.')}\\.${name}: .*nothing in it is run`));
        assert.deepEqual(calls, []);
      });
    }
  });

  describe('refuses every other opcode by name', () => {
    // Python's pickletools names, protocols 0-5 (each followed by enough bytes for any operand).
    const FORBIDDEN: [string, number][] = [
      ['POP', 0x30], ['POP_MARK', 0x31], ['DUP', 0x32], ['FLOAT', 0x46], ['INT', 0x49], ['LONG', 0x4c], ['PERSID', 0x50],
      ['STRING', 0x53], ['BINSTRING', 0x54], ['UNICODE', 0x56], ['DICT', 0x64], ['GET', 0x67], ['INST', 0x69], ['LIST', 0x6c],
      ['OBJ', 0x6f], ['PUT', 0x70], ['EXT1', 0x82], ['EXT2', 0x83], ['EXT4', 0x84], ['LONG4', 0x8b], ['BINBYTES', 0x42],
      ['SHORT_BINBYTES', 0x43], ['SHORT_BINUNICODE', 0x8c], ['BINUNICODE8', 0x8d], ['BINBYTES8', 0x8e], ['ADDITEMS', 0x90],
      ['FROZENSET', 0x91], ['NEWOBJ_EX', 0x92], ['STACK_GLOBAL', 0x93], ['MEMOIZE', 0x94], ['FRAME', 0x95], ['BYTEARRAY8', 0x96],
      ['NEXT_BUFFER', 0x97], ['READONLY_BUFFER', 0x98],
    ];
    for (const [name, code] of FORBIDDEN) {
      it(name, () => refuses(pickle(pk.proto(4), pk.mark, pk.int(1), [code, 1, 0, 0, 0, 0, 0, 0, 0], pk.stop), new RegExp(`byte 5 \\(${name}\\): an opcode a weights-only pickle may not use$`)));
    }
    it('a byte that is no opcode', () => refuses(pickle(pk.proto(2), [0xff], pk.stop), /byte 2 \(opcode 0xff\): not a pickle opcode$/));
  });

  describe('refuses misuse of the allowed opcodes and globals', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['REDUCE of something that is not a global', pickle(pk.proto(), pk.str('f'), pk.emptyTuple, pk.reduce, pk.stop), /\(REDUCE\): a str applied as if it were a class or function/],
      ['REDUCE with arguments that are not a tuple', pickle(pk.proto(), pk.global('test', 'f'), pk.emptyList, pk.reduce, pk.stop), /\(REDUCE\): test\.f applied to a list, not an argument tuple/],
      ['REDUCE of a global that is only a tag', pickle(pk.proto(), pk.global('test', 'tag'), pk.emptyTuple, pk.reduce, pk.stop), /\(REDUCE\): test\.tag cannot be called here/],
      ['NEWOBJ of a global that cannot be instantiated', pickle(pk.proto(), pk.global('test', 'f'), pk.emptyTuple, pk.newobj, pk.stop), /\(NEWOBJ\): test\.f cannot be instantiated here/],
      ['a handler refusing its arguments', pickle(pk.proto(), pk.global('test', 'strict'), pk.emptyTuple, pk.reduce, pk.stop), /byte \d+ \(REDUCE\): strict takes nothing$/],
      ['BUILD on anything but a dict', pickle(pk.proto(), pk.emptyList, pk.emptyDict, pk.build, pk.stop), /\(BUILD\): BUILD of a list from a dict; only a dict's attributes are set/],
      ['BUILD with a state that is not a dict', pickle(pk.proto(), pk.emptyDict, pk.emptyTuple, pk.build, pk.stop), /BUILD of a dict from a tuple/],
      ['SETITEM on a list', pickle(pk.proto(), pk.emptyList, pk.int(1), pk.int(2), pk.setitem, pk.stop), /\(SETITEM\): items set on a list, not a dict/],
      ['APPEND to a dict', pickle(pk.proto(), pk.emptyDict, pk.int(1), pk.append, pk.stop), /\(APPEND\): items appended to a dict, not a list/],
      ['SETITEMS with an odd count', pickle(pk.proto(), pk.emptyDict, pk.mark, pk.int(1), pk.setitems, pk.stop), /an odd number of items/],
      ['a dict key that is a tuple', pickle(pk.proto(), pk.emptyDict, pk.emptyTuple, pk.int(1), pk.setitem, pk.stop), /a dict key that is a tuple/],
      ['BINGET of a memo never stored', pickle(pk.proto(), pk.binget(9), pk.stop), /\(BINGET\): memo 9, which was never stored/],
      ['popping past a MARK', pickle(pk.proto(), pk.int(1), pk.mark, pk.tuple1, pk.stop), /\(TUPLE1\): the stack is empty/],
      ['TUPLE without a MARK', pickle(pk.proto(), pk.int(1), pk.tuple, pk.stop), /\(TUPLE\): no MARK to gather from/],
      ['STOP on an empty stack', pickle(pk.proto(), pk.stop), /\(STOP\): the stack is empty/],
      ['a protocol newer than Python writes', pickle(pk.proto(6), pk.none, pk.stop), /\(PROTO\): pickle protocol 6/],
      ['a string that is not UTF-8', pickle(pk.proto(), [0x58, 2, 0, 0, 0, 0xc3, 0x28], pk.stop), /\(BINUNICODE\): a string that is not valid UTF-8/],
      ['a GLOBAL line longer than any name', pickle(pk.proto(), pk.global('x'.repeat(300), 'y'), pk.stop), /\(GLOBAL\): a module or name longer than 256 characters/],
      ['a persistent id where none may be', pickle(pk.proto(), pk.str('k'), pk.binpersid, pk.stop), /\(BINPERSID\): a persistent id, which this file may not hold/],
    ];
    for (const [label, bytes, problem] of cases) it(label, () => refuses(bytes, problem));
  });

  it('names truncation as such (TruncatedPickleError), wherever the pickle is cut', () => {
    const whole = pickle(pk.proto(2), pk.emptyDict, pk.str('name'), pk.global('test', 'f'), pk.emptyTuple, pk.reduce, pk.setitem, pk.stop);
    for (let cut = 0; cut < whole.length; cut++) refuses(whole.subarray(0, cut), /the pickle ends here, before its STOP \(truncated\?\)$/, TruncatedPickleError);
  });

  it('is linear: a million-item list and a 100 000-deep nesting parse in well under a second', () => {
    const t0 = performance.now();
    const items = Uint8Array.from({ length: 2_000_000 }, (_, i) => (i % 2 ? i & 0xff : pk.int(0)[0]));
    assert.equal((load(concat([pickle(pk.proto(), pk.emptyList, pk.mark), items, pickle(pk.appends, pk.stop)])) as PyList).items.length, 1_000_000);
    const nesting = new Uint8Array(100_000).fill(pk.tuple1[0]);
    assert.ok(load(concat([pickle(pk.proto(), pk.emptyList), nesting, pickle(pk.stop)])) instanceof PyTuple);
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  });
});
