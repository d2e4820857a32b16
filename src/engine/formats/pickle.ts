/**
 * A restricted unpickler: Python's pickle machine cut down to the opcodes torch's own
 * weights-only unpickler accepts (torch.load(weights_only=True)), run as a parser of data.
 * Unpickling normally imports and calls whatever the file names (GLOBAL + REDUCE is how a pickle
 * runs os.system); here a GLOBAL resolves only through the caller's allowlist of handlers written
 * in TypeScript, REDUCE and NEWOBJ only apply those handlers, BUILD only sets attributes on a dict,
 * and every other global or opcode is refused by name before anything is built from it.
 * Nothing is ever imported, evaluated or called on the file's behalf.
 *
 * Work is linear in the pickle's length: every opcode reads or pushes a bounded amount, and the
 * ones that gather (TUPLE, APPENDS, SETITEMS) consume what they gather.
 */
import { InputError } from '../errors';
import { decodeUtf8 } from '../io';

/** What a pickle can hold here: Python scalars, the containers below, and the handlers' own objects. */
export type PyValue = null | boolean | number | bigint | string | object;
export type DictKey = string | number | bigint | boolean | null;

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}
export class PyList {
  constructor(readonly items: PyValue[]) {}
}
export class PyDict {
  readonly items = new Map<DictKey, PyValue>();
  /** Set by BUILD: an OrderedDict's __dict__ (a state dict's `_metadata`), never its items. */
  readonly attributes = new Map<string, PyValue>();
}
/** EMPTY_SET only: ADDITEMS is not among the allowed opcodes. */
export class PySet {}

/** What an allowlisted global may do; a global without `call` cannot be REDUCEd (a dtype tag, say). */
export interface GlobalHandler {
  /** REDUCE: the callable applied to its argument tuple. */
  readonly call?: (args: readonly PyValue[]) => PyValue;
  /** NEWOBJ: cls.__new__(cls, *args). */
  readonly construct?: (args: readonly PyValue[]) => PyValue;
}

/** A GLOBAL that passed the allowlist: its "module.name" and the handler standing in for it. */
export class PyGlobal {
  constructor(readonly name: string, readonly handler: GlobalHandler) {}
}

/** Thrown by handlers for arguments they refuse; reported with the pickle's name and byte offset. */
export class PickleFault extends Error {}

/** The pickle ends before its STOP: callers that read a file in pieces can read more and retry. */
export class TruncatedPickleError extends InputError {}

export interface UnpickleOptions {
  /** The file, for messages. */
  readonly source: string;
  /** The pickle inside the file, for messages ("archive/data.pkl", "pickle 4 (state dict)"). */
  readonly label: string;
  /** Allowed globals by "module.name"; every other global is refused by that name. */
  readonly globals: ReadonlyMap<string, GlobalHandler>;
  /** BINPERSID: the object a persistent id stands for (torch: a storage). Absent: refused. */
  readonly persistentLoad?: (pid: PyValue) => PyValue;
}

// Every opcode of protocols 0-5, so that a refusal can name what it refuses.
const OPCODES: Readonly<Record<number, string>> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3',
  0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** The longest module or name a GLOBAL may spell (real ones are a few dozen characters). */
const MAX_GLOBAL_LINE = 256;

/** A value's type for messages, with its article ("an int", "a dict", "the global posix.system"). */
export function kindOf(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an int' : 'a float';
  if (typeof v === 'bigint') return 'an int';
  if (typeof v === 'string') return 'a str';
  if (v instanceof PyTuple) return 'a tuple';
  if (v instanceof PyList) return 'a list';
  if (v instanceof PyDict) return 'a dict';
  if (v instanceof PySet) return 'a set';
  if (v instanceof PyGlobal) return `the global ${v.name}`;
  // The handlers' own objects may say what they are.
  const own = (v as { kind?: unknown }).kind;
  return typeof own === 'string' ? own : `a ${v.constructor.name}`;
}

/**
 * Runs the pickle that starts at `start` to its STOP. Returns the value and where the pickle
 * ended (a legacy torch file is several pickles in a row).
 */
export function unpickle(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: PyValue; end: number } {
  const { source, label } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: PyValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PyValue>();
  let pos = start;
  let opAt = start;
  let op = 'the start';

  const fail = (problem: string): never => {
    throw new InputError(source, `${label}, byte ${opAt} (${op}): ${problem}`);
  };
  const truncated = (): never => {
    throw new TruncatedPickleError(source, `${label}, byte ${opAt} (${op}): the pickle ends here, before its STOP (truncated?)`);
  };
  const need = (n: number): number => {
    if (pos + n > bytes.length) truncated();
    const at = pos;
    pos += n;
    return at;
  };
  const text = (at: number, n: number): string => {
    try {
      return decodeUtf8(bytes.subarray(at, at + n), source);
    } catch {
      return fail('a string that is not valid UTF-8');
    }
  };
  const line = (): string => {
    const limit = Math.min(bytes.length, pos + MAX_GLOBAL_LINE + 1);
    const end = bytes.subarray(pos, limit).indexOf(0x0a);
    if (end < 0) {
      if (limit === bytes.length) truncated();
      fail(`a module or name longer than ${MAX_GLOBAL_LINE} characters`);
    }
    const s = text(pos, end);
    pos += end + 1;
    return s;
  };
  const floor = () => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): PyValue => {
    if (stack.length <= floor()) fail('the stack is empty');
    return stack.pop()!;
  };
  const top = (): PyValue => {
    if (stack.length <= floor()) fail('the stack is empty');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const mark = marks.pop();
    if (mark === undefined) fail('no MARK to gather from');
    return stack.splice(mark!);
  };
  const dictKey = (k: PyValue): DictKey => {
    if (k === null || typeof k !== 'object') return k;
    return fail(`a dict key that is ${kindOf(k)}`);
  };
  const setItems = (items: readonly PyValue[]) => {
    const dict = top();
    if (!(dict instanceof PyDict)) fail(`items set on ${kindOf(dict)}, not a dict`);
    if (items.length % 2) fail('an odd number of items for key/value pairs');
    for (let i = 0; i < items.length; i += 2) (dict as PyDict).items.set(dictKey(items[i]), items[i + 1]);
  };
  const appendItems = (items: readonly PyValue[]) => {
    const list = top();
    if (!(list instanceof PyList)) fail(`items appended to ${kindOf(list)}, not a list`);
    // A loop, not push(...items): spreading a huge argument list overflows the call stack.
    for (const item of items) (list as PyList).items.push(item);
  };
  const handled = (run: () => PyValue): PyValue => {
    try {
      return run();
    } catch (e) {
      if (e instanceof PickleFault) fail(e.message);
      throw e;
    }
  };
  const applied = (what: 'call' | 'construct'): PyValue => {
    const args = pop();
    const callee = pop();
    if (!(callee instanceof PyGlobal)) return fail(`${kindOf(callee)} applied as if it were a class or function`);
    if (!(args instanceof PyTuple)) return fail(`${callee.name} applied to ${kindOf(args)}, not an argument tuple`);
    const f = callee.handler[what];
    if (!f) return fail(`${callee.name} cannot be ${what === 'call' ? 'called' : 'instantiated'} here`);
    return handled(() => f(args.items));
  };
  const memoIndex = (at: number, width: 1 | 4) => (width === 1 ? bytes[at] : view.getUint32(at, true));
  const int = (n: bigint): number | bigint => (n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n);

  for (;;) {
    opAt = pos;
    op = 'an opcode';
    const code = bytes[need(1)];
    op = OPCODES[code] ?? `opcode 0x${code.toString(16).padStart(2, '0')}`;
    switch (code) {
      case 0x80: { // PROTO
        const version = bytes[need(1)];
        if (version > 5) fail(`pickle protocol ${version}, newer than any Python writes`);
        break;
      }
      case 0x2e: // STOP
        return { value: pop(), end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(bytes[need(1)]); break; // BININT1
      case 0x4d: stack.push(view.getUint16(need(2), true)); break; // BININT2
      case 0x8a: { // LONG1: little-endian two's complement
        const n = bytes[need(1)];
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]);
        if (n > 0 && bytes[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(int(v));
        break;
      }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x58: { // BINUNICODE
        const n = view.getUint32(need(4), true);
        stack.push(text(need(n), n));
        break;
      }
      case 0x55: { // SHORT_BINSTRING: torch.load decodes it as UTF-8
        const n = bytes[need(1)];
        stack.push(text(need(n), n));
        break;
      }
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x5d: stack.push(new PyList([])); break; // EMPTY_LIST
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x8f: stack.push(new PySet()); break; // EMPTY_SET
      case 0x74: stack.push(new PyTuple(popMark())); break; // TUPLE
      case 0x85: case 0x86: case 0x87: { // TUPLE1, TUPLE2, TUPLE3
        const n = code - 0x84;
        const items: PyValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push(new PyTuple(items));
        break;
      }
      case 0x61: appendItems([pop()]); break; // APPEND
      case 0x65: appendItems(popMark()); break; // APPENDS
      case 0x73: { // SETITEM
        const value = pop();
        const key = pop();
        setItems([key, value]);
        break;
      }
      case 0x75: setItems(popMark()); break; // SETITEMS
      case 0x71: case 0x72: // BINPUT, LONG_BINPUT
        memo.set(memoIndex(need(code === 0x71 ? 1 : 4), code === 0x71 ? 1 : 4), top());
        break;
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = memoIndex(need(code === 0x68 ? 1 : 4), code === 0x68 ? 1 : 4);
        if (!memo.has(i)) fail(`memo ${i}, which was never stored`);
        stack.push(memo.get(i)!);
        break;
      }
      case 0x63: { // GLOBAL: refused by name unless allowlisted
        const name = `${line()}.${line()}`;
        const handler = options.globals.get(name);
        if (!handler) fail(`forbidden global ${name}: a weights-only checkpoint may only rebuild tensors and dicts, and nothing in it is run`);
        stack.push(new PyGlobal(name, handler!));
        break;
      }
      case 0x52: stack.push(applied('call')); break; // REDUCE
      case 0x81: stack.push(applied('construct')); break; // NEWOBJ
      case 0x62: { // BUILD: only OrderedDict's __dict__.update(state)
        const state = pop();
        const inst = top();
        if (!(inst instanceof PyDict) || !(state instanceof PyDict)) fail(`BUILD of ${kindOf(inst)} from ${kindOf(state)}; only a dict's attributes are set`);
        for (const [k, v] of (state as PyDict).items) {
          if (typeof k !== 'string') fail(`an attribute name that is ${kindOf(k)}`);
          (inst as PyDict).attributes.set(k as string, v);
        }
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('a persistent id, which this file may not hold');
        stack.push(handled(() => options.persistentLoad!(pid)));
        break;
      }
      default:
        fail(OPCODES[code] ? 'an opcode a weights-only pickle may not use' : 'not a pickle opcode');
    }
  }
}
