import assert from 'node:assert/strict';
import { CancelledError, InputError, MambaScopeError } from '../../src/engine/errors';
import {
  fromTensorMessage,
  ProtocolError,
  RemoteError,
  Rpc,
  toHalfMessage,
  toTensorMessage,
  type ApiShape,
  type HostApi,
  type Progress,
  type WebviewApi,
  type WireMessage,
} from '../../src/protocol';

/**
 * Two Rpc ends joined like a host and its webview: messages are delivered asynchronously and
 * structured-cloned (as the webview's postMessage does), so a test cannot pass by sharing objects.
 */
function connect(): { host: Rpc<HostApi, WebviewApi>; webview: Rpc<WebviewApi, HostApi>; wire: WireMessage[] } {
  const wire: WireMessage[] = [];
  let toHost: (d: unknown) => void = () => undefined;
  let toWebview: (d: unknown) => void = () => undefined;
  const deliver = (m: WireMessage, to: () => (d: unknown) => void) => {
    wire.push(m);
    const copy = structuredClone(m);
    setTimeout(() => to()(copy), 0);
  };
  const host = new Rpc<HostApi, WebviewApi>('host', (m) => deliver(m, () => toWebview), (l) => void (toHost = l));
  const webview = new Rpc<WebviewApi, HostApi>('webview', (m) => deliver(m, () => toHost), (l) => void (toWebview = l));
  return { host, webview, wire };
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('protocol: tensor messages', () => {
  it('round-trips float32 and int32 tensors and sends only the viewed bytes of a larger buffer', () => {
    const big = new Float32Array([9, 1, 2, 3, 4, 5, 6, 9]);
    const m = toTensorMessage({ shape: [2, 3], data: big.subarray(1, 7) });
    assert.equal(m.buffer.byteLength, 24);
    assert.deepEqual([...(fromTensorMessage(structuredClone(m), 'x').data as Float32Array)], [1, 2, 3, 4, 5, 6]);
    const ids = toTensorMessage({ shape: [3], data: Int32Array.from([7, -1, 40000]) });
    const back = fromTensorMessage(ids, 'ids');
    assert.ok(back.data instanceof Int32Array);
    assert.deepEqual([...back.data], [7, -1, 40000]);
  });

  it('carries a half-precision checkpoint tensor in 2 bytes a value, decoded to the same float32 values', () => {
    // Values bf16 and f16 hold exactly, written out in binary: 1.5, −2^−3, 3·2^9, the smallest f16 subnormal, 0, 65504 (f16 max).
    const bf16Values = Float32Array.from([1.5, -0.125, 1536, 2 ** -24, 0, 3 * 2 ** 100]);
    const f16Values = Float32Array.from([1.5, -0.125, 1536, 2 ** -24, 0, 65504]);
    for (const [dtype, values, bits] of [['bfloat16', bf16Values, [0x3fc0, 0xbe00, 0x44c0, 0x3380, 0, 0x7240]], ['float16', f16Values, [0x3e00, 0xb000, 0x6600, 0x0001, 0, 0x7bff]]] as const) {
      const m = toHalfMessage({ shape: [2, 3], data: values }, dtype);
      assert.equal(m.buffer.byteLength, 12, dtype);
      assert.deepEqual([...new Uint16Array(m.buffer)], bits, dtype);
      const back = fromTensorMessage(structuredClone(m), 'w');
      assert.ok(back.data instanceof Float32Array);
      assert.deepEqual([...back.data], [...values], dtype);
    }
    assert.throws(() => fromTensorMessage({ shape: [3], dtype: 'bfloat16', buffer: new ArrayBuffer(12) }, 'w'), /w: has 12 bytes but shape \[3\] of bfloat16 needs 6/);
  });

  it('refuses a buffer whose size disagrees with the shape, naming the tensor', () => {
    const m = { shape: [2, 2], dtype: 'float32' as const, buffer: new ArrayBuffer(12) };
    assert.throws(() => fromTensorMessage(m, 'layers.0.delta'), (e: unknown) => e instanceof ProtocolError && /layers\.0\.delta: has 12 bytes/.test(e.message));
    assert.throws(() => fromTensorMessage({ shape: [1], dtype: 'float64' as never, buffer: new ArrayBuffer(4) }, 't'), ProtocolError);
    assert.throws(() => fromTensorMessage({ shape: [-1], dtype: 'float32', buffer: new ArrayBuffer(4) }, 't'), ProtocolError);
  });
});

describe('protocol: Rpc', () => {
  it('answers a request with the handler result, ArrayBuffers intact', async () => {
    const { host, webview } = connect();
    webview.handle('exportView', (p) => ({ kind: p.kind, suggestedName: `view.${p.kind}`, bytes: new Uint8Array([1, 2, 3]).buffer }));
    const r = await host.request('exportView', { kind: 'npy' });
    assert.equal(r.suggestedName, 'view.npy');
    assert.deepEqual([...new Uint8Array(r.bytes)], [1, 2, 3]);
  });

  it('carries typed errors across: kind, source and problem survive', async () => {
    const { host, webview } = connect();
    webview.handle('run', () => {
      throw new InputError('demo0.py', 'is empty: nothing to inspect');
    });
    webview.handle('showDump', () => {
      throw new TypeError('x is undefined');
    });
    const params = { runId: 'r', modelId: 'm', sampleName: 's', ids: new ArrayBuffer(0), tokens: [], offsets: [], settings: { backend: 'auto' as const, memoryLimitMB: 1200 } };
    await assert.rejects(host.request('run', params), (e: unknown) => e instanceof MambaScopeError && e.kind === 'bad-input' && e.message === 'demo0.py: is empty: nothing to inspect');
    await assert.rejects(host.request('showDump', { name: 'd', metadata: {}, index: [], tensors: {} }), (e: unknown) => e instanceof RemoteError && e.source === 'webview' && e.problem === 'x is undefined');
    await assert.rejects(host.request('describe', null), (e: unknown) => e instanceof MambaScopeError && e.kind === 'unsupported' && /no handler for "describe"/.test(e.message));
  });

  it('delivers progress to the requester before the reply', async () => {
    const { host, webview } = connect();
    webview.handle('loadModel', (_p, ctx) => {
      ctx.progress({ stage: 'uploading weights', done: 1, total: 2 });
      ctx.progress({ stage: 'uploading weights', done: 2, total: 2 });
      return { backend: { backend: 'cpu', reason: 'requested', fallbacksTried: [] }, uploadMs: 1 };
    });
    const seen: Progress[] = [];
    const r = await host.request('loadModel', { modelId: 'm', name: 'm', config: { arch: 'seed', dModel: 1, dState: 1 }, tensors: {} }, { onProgress: (p) => seen.push(p) });
    assert.equal(r.backend.backend, 'cpu');
    assert.deepEqual(seen.map((p) => p.done), [1, 2]);
  });

  it('cancel: rejects at once, aborts the handler, and drops its late reply', async () => {
    const { host, webview, wire } = connect();
    let handlerSawAbort = false;
    webview.handle('run', async (_p, ctx) => {
      for (let i = 0; i < 100; i++) {
        await tick(2);
        try {
          ctx.throwIfCancelled();
        } catch (e) {
          handlerSawAbort = true;
          throw e;
        }
      }
      return null as never;
    });
    const controller = new AbortController();
    const params = { runId: 'r', modelId: 'm', sampleName: 's', ids: new ArrayBuffer(0), tokens: [], offsets: [], settings: { backend: 'auto' as const, memoryLimitMB: 1200 } };
    const p = host.request('run', params, { signal: controller.signal });
    await tick(10);
    controller.abort();
    await assert.rejects(p, CancelledError);
    await tick(30);
    assert.ok(handlerSawAbort, 'the webview handler was told to stop');
    assert.ok(wire.some((m) => m.rpc === 'cancel'));
    assert.ok(wire.some((m) => m.rpc === 'reply' && m.error?.kind === 'cancelled'), 'the handler replied cancelled, which the host ignored');
  });

  it('dispose settles every pending request with CancelledError', async () => {
    const { host, webview } = connect();
    webview.handle('describe', () => new Promise(() => undefined));
    const p = host.request('describe', null);
    await tick();
    host.dispose();
    await assert.rejects(p, (e: unknown) => e instanceof CancelledError && /panel closed/.test(e.message));
    await assert.rejects(host.request('describe', null), CancelledError);
  });

  it('routes notifications both ways and ignores foreign messages', async () => {
    const { host, webview } = connect();
    const got: unknown[] = [];
    host.on('selectionChanged', (s) => got.push(s));
    webview.on('selectToken', (s) => got.push(s));
    host.receive({ type: 'not ours' });
    host.receive(null);
    webview.notify('selectionChanged', { runId: 'r', layer: 1, token: 3, channel: null });
    host.notify('selectToken', { runId: 'r', token: 4 });
    await tick();
    assert.deepEqual(got.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))), [
      { runId: 'r', layer: 1, token: 3, channel: null },
      { runId: 'r', token: 4 },
    ]);
  });

  it('a throwing notification handler does not stop later messages', async () => {
    const { host, webview } = connect();
    let calls = 0;
    const origError = console.error;
    console.error = () => undefined;
    try {
      host.on('ready', () => {
        calls++;
        throw new Error('boom');
      });
      webview.notify('ready', { protocolVersion: 1 });
      webview.notify('ready', { protocolVersion: 1 });
      await tick();
    } finally {
      console.error = origError;
    }
    assert.equal(calls, 2);
  });
});

// Compile-time: both APIs fit the Rpc constraint (a wrong shape fails `npx tsc`).
const _apis: [ApiShape, ApiShape] = [{} as HostApi, {} as WebviewApi];
void _apis;
