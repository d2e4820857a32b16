/**
 * `forgotten` streamed (issue 13): RetentionStream on the chunked float64 reference's Δ rows
 * gives Retention.fromLayer's forgottenAt, reset events and R(s→L−1) on the single pass's Δ, and
 * the CLI's output is the in-memory computation's.
 */
import * as assert from 'node:assert/strict';
import { promises as fs, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CommandIO } from '../../src/cli/command';
import { main } from '../../src/cli/main';
import { ChannelMemory } from '../../src/engine/analysis/channelMemory';
import { PositionBuckets, stateNorms } from '../../src/engine/analysis/positionBuckets';
import { layerDecay, Retention, type ResetEvent, type RetentionView } from '../../src/engine/analysis/retention';
import { RetentionStream } from '../../src/engine/analysis/retentionStream';
import { decodeUtf8 } from '../../src/engine/io';
import type { LanguageModel } from '../../src/engine/model/graph';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward, referenceForwardChunked } from '../../src/engine/reference/forward';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { NodeFolderStore } from '../../src/node/files';
import { RowSpill } from '../../src/node/rowSpill';
import { fixture } from './fixtures';

const TOKENS = 3000;
const CHUNK = 256;

async function load(name: string): Promise<{ model: LanguageModel<'float64'>; tokenizer: MambaTokenizer }> {
  const dir = fixture(name);
  const model = (await loadModelFolder(new NodeFolderStore(dir), 'float64')) as LanguageModel<'float64'>;
  const tokenizer = MambaTokenizer.fromJson(decodeUtf8(await fs.readFile(path.join(dir, 'tokenizer.json')), 'tokenizer.json'), 'tokenizer.json');
  return { model, tokenizer };
}

/** forgotten --json's report computed from one whole-sequence float64 forward held in memory: Retention, ChannelMemory and PositionBuckets on every Δ and state at once. */
function inMemory(model: LanguageModel<'float64'>, encoded: { ids: ArrayLike<number>; tokens: readonly string[] }, layers: number[], threshold: number, view: RetentionView) {
  const whole = referenceForward(model, encoded.ids, { layers, keep: ['delta', 'h'], statesAt: Array.from(encoded.ids, (_, t) => t) });
  return {
    threshold,
    layers: whole.layers.map(({ layer, tensors }) => {
      const retention = Retention.fromLayer(tensors.delta!, layerDecay(model, layer).A);
      const at = retention.forgottenAt(threshold, view);
      const end = retention.atEnd(view);
      // The channels' memory and the buckets from the whole Δ at once: the streamed run fed them chunk by chunk.
      const memory = new ChannelMemory(layerDecay(model, layer).A);
      memory.push(tensors.delta!);
      const m = memory.finish(threshold);
      const buckets = new PositionBuckets(tensors.delta!.shape[1]);
      buckets.push(tensors.delta!, stateNorms(tensors.h!));
      return {
        layer,
        tokens: encoded.tokens.map((token, index) => ({ index, token, forgottenAt: at[index] < 0 ? null : at[index], retentionAtEnd: end[index] })),
        memory: { horizon: m.horizon, global: m.global, local: m.local, channels: Array.from(m.memory, (x) => (Number.isFinite(x) ? x : null)) },
        positions: buckets.finish(retention.resetEvents(threshold)),
      };
    }),
  };
}

interface Streamed {
  forgottenAt: Int32Array;
  atEnd: Float64Array;
  resets: ResetEvent[];
  /** The most prefix rows a window held. */
  widest: number;
}

/**
 * Each case's RetentionStream per layer over one chunked reference run's Δ rows; R(s→L−1) from
 * the prefix rows, read back in blocks of `block` (not lined up with the chunks, last block first).
 * [case][layer].
 */
async function streamed(model: LanguageModel<'float64'>, ids: ArrayLike<number>, layers: number[], cases: readonly [number, RetentionView][], block = 700): Promise<Streamed[][]> {
  const L = ids.length;
  const streams = cases.map(([threshold, view]) => layers.map((layer) => new RetentionStream(layerDecay(model, layer).A, L, threshold, view)));
  const prefix = cases.map(() => layers.map(() => [] as Float64Array[]));
  const widest = cases.map(() => layers.map(() => 0));
  await referenceForwardChunked(model, ids, {
    chunkLength: CHUNK,
    withoutHead: true,
    onLayer: (layer, internals) => {
      const k = layers.indexOf(layer);
      if (k < 0) return;
      streams.forEach((byLayer, c) => {
        prefix[c][k].push(byLayer[k].push(internals.delta!));
        widest[c][k] = Math.max(widest[c][k], byLayer[k].windowRows);
      });
    },
  });
  return streams.map((byLayer, c) => byLayer.map((stream, k) => {
    const D = stream.channels;
    const all = new Float64Array(L * D);
    let at = 0;
    for (const rows of prefix[c][k]) (all.set(rows, at), (at += rows.length));
    const atEnd = new Float64Array(L);
    const starts: number[] = [];
    for (let s = 0; s < L; s += block) starts.push(s);
    for (const s of starts.reverse()) stream.atEnd(all.subarray(s * D, Math.min(L, s + block) * D), s, atEnd);
    return { ...stream.finish(), atEnd, widest: widest[c][k] };
  }));
}
function assertClose(got: Float64Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-300));
  assert.ok(worst <= 1e-12, `${what}: relative difference ${worst}`);
}

describe('forgotten streamed: retention over chunks of Δ', function () {
  this.timeout(300_000);

  for (const name of ['mamba1-tiny', 'mamba2-tiny']) {
    it(`${name}: ${TOKENS} tokens in ${CHUNK}-token chunks give Retention.fromLayer's forgottenAt, reset events and R(s→L−1), every view`, async () => {
      const { model, tokenizer } = await load(name);
      const text = await fs.readFile(fixture('long', 'text-32k.py'), 'utf8');
      const ids = tokenizer.encode(text).ids.slice(0, TOKENS);
      assert.equal(ids.length, TOKENS);
      const layers = model.layers.map((l) => l.index);
      const whole = referenceForward(model, ids, { layers, keep: ['delta'] });
      // Mamba-2 has one state per head here (A is [heads]).
      const states = layerDecay(model, 0).A.shape[1] ?? 1;
      // τ = 0.865: about half of mamba1-tiny's steps keep less (reset events), half more.
      const cases: [number, RetentionView][] = [[0.05, {}], [0.3, {}], [0.865, {}], [0.05, { channel: 3 }], [0.05, { state: states - 1 }], [0.5, { channel: 1, state: 0 }]];
      let crossing = 0;
      let resetCount = 0;
      const all = await streamed(model, ids, layers, cases);
      for (const [c, [threshold, view]] of cases.entries()) {
        const got = all[c];
        whole.layers.forEach(({ layer, tensors }, k) => {
          const what = `${name} layer ${layer}, τ = ${threshold}, view ${JSON.stringify(view)}`;
          const retention = Retention.fromLayer(tensors.delta!, layerDecay(model, layer).A);
          const at = retention.forgottenAt(threshold, view);
          assert.deepEqual(got[k].forgottenAt, at, `${what}: forgottenAt`);
          assertClose(got[k].atEnd, retention.atEnd(view), `${what}: atEnd`);
          const resets = retention.resetEvents(threshold);
          resetCount += resets.length;
          assert.deepEqual(got[k].resets.map((r) => r.index), resets.map((r) => r.index), `${what}: reset indices`);
          assertClose(Float64Array.from(got[k].resets, (r) => r.kept), Float64Array.from(resets, (r) => r.kept), `${what}: reset values`);
          // The windows cross chunk boundaries: tokens forgotten in a later chunk than their own.
          crossing += at.filter((t, s) => t >= 0 && Math.floor(t / CHUNK) > Math.floor(s / CHUNK)).length;
          // What is held is the longest lifetime's window, not the sequence.
          const lifetimes = Array.from(at, (t, s) => (t < 0 ? TOKENS - s : t - s + 1));
          assert.ok(got[k].widest <= Math.max(...lifetimes), `${what}: window of ${got[k].widest} rows`);
        });
      }
      assert.ok(crossing > 0, 'some windows cross a chunk boundary');
      assert.ok(resetCount > 0, 'some reset events');
    });
  }

  it('a window past maxWindowRows is refused with the caller\'s error', async () => {
    const { model, tokenizer } = await load('mamba1-tiny');
    const ids = tokenizer.encode(await fs.readFile(fixture('long', 'text-32k.py'), 'utf8')).ids.slice(0, 600);
    // One state of one channel decays slowly: its tokens stay retained for long.
    const stream = new RetentionStream(layerDecay(model, 0).A, ids.length, 0.05, { state: 0 }, 'test', { maxWindowRows: 2, onWindowLimit: (rows, token) => new Error(`window ${rows} at ${token}`) });
    await assert.rejects(referenceForwardChunked(model, ids, { chunkLength: CHUNK, withoutHead: true, onLayer: (layer, internals) => layer === 0 && stream.push(internals.delta!) }), /^Error: window 3 at \d+$/);
  });

  it('RowSpill reads back what it wrote, in blocks, and leaves nothing behind', () => {
    const spill = RowSpill.create(3, 'mamba-scope-spilltest-');
    const rows = Float64Array.from({ length: 3 * 10 }, (_, i) => i * 0.1 - 1);
    spill.append(rows.subarray(0, 12));
    spill.append(rows.subarray(12));
    const back: number[] = [];
    const starts: number[] = [];
    spill.forEachBlock(4, (block, start) => (back.push(...block), starts.push(start)));
    assert.deepEqual(back, [...rows]);
    assert.deepEqual(starts, [0, 4, 8]);
    spill.remove();
    spill.remove();
    assert.deepEqual(readdirSync(os.tmpdir()).filter((f) => f.startsWith('mamba-scope-spilltest-')), []);
  });
});

describe('forgotten streamed: the CLI', function () {
  this.timeout(300_000);
  const MODEL = fixture('mamba1-tiny');
  let textFile: string;
  before(async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mamba-scope-fstream-'));
    textFile = path.join(dir, 'sample.py');
    const text = await fs.readFile(fixture('long', 'text-32k.py'), 'utf8');
    await fs.writeFile(textFile, text.slice(0, 2400));
  });

  function capture() {
    const out: string[] = [], err: string[] = [];
    const io: CommandIO = { out: (s) => out.push(s), err: (s) => err.push(s) };
    return { io, out, err };
  }
  // Spills of this run only: another process's (a run killed mid-way, a parallel one) may be in the same temp folder.
  const spills = () => readdirSync(os.tmpdir()).filter((f) => f.startsWith('mamba-scope-forgotten-'));
  let existing: Set<string>;
  beforeEach(() => (existing = new Set(spills())));
  const spillsLeft = () => spills().filter((f) => !existing.has(f));

  for (const [flags, view] of [[[], {}], [['--threshold', '0.3', '--channel', '5'], { channel: 5 }], [['--state', '2', '--layers', '-1'], { state: 2 }]] as [string[], RetentionView][]) {
    it(`--json ${flags.join(' ')} is the in-memory computation's, and the spill is gone`, async () => {
      const c = capture();
      assert.equal(await main(['forgotten', '--model', MODEL, '--text', textFile, '--json', ...flags], c.io), 0, c.err.join('\n'));
      const got = JSON.parse(c.out.join('\n'));
      const { model, tokenizer } = await load('mamba1-tiny');
      const encoded = tokenizer.encode(await fs.readFile(textFile, 'utf8'));
      const threshold = flags.includes('--threshold') ? 0.3 : 0.05;
      const layers = flags.includes('--layers') ? [model.layers.length - 1] : model.layers.map((l) => l.index);
      const want = inMemory(model, encoded, layers, threshold, view);
      assert.deepEqual(got, want);
      assert.deepEqual(spillsLeft(), []);
    });
  }

  it('the text summary is the whole-sequence path\'s (the one --causal runs), reset events included', async () => {
    const streamedRun = capture();
    assert.equal(await main(['forgotten', '--model', MODEL, '--text', textFile, '--max-tokens', '80', '--threshold', '0.865'], streamedRun.io), 0, streamedRun.err.join('\n'));
    const whole = capture();
    assert.equal(await main(['forgotten', '--model', MODEL, '--text', textFile, '--max-tokens', '80', '--threshold', '0.865', '--causal', '1e-3'], whole.io), 0, whole.err.join('\n'));
    assert.ok(streamedRun.out.some((l) => /reset event/.test(l)) && !streamedRun.out.some((l) => /no reset events/.test(l)), streamedRun.out.join('\n'));
    assert.deepEqual(streamedRun.out, whole.out.slice(0, streamedRun.out.length));
    assert.ok(whole.out.slice(streamedRun.out.length).every((l) => /causally forgotten/.test(l)));
  });

  it('a hybrid runs as one pass of the chunked reference: Jamba\'s layer 3, after its attention layer, is the in-memory computation\'s', async () => {
    const c = capture();
    assert.equal(await main(['forgotten', '--model', fixture('families', 'jamba'), '--text', textFile, '--max-tokens', '120', '--layers', '1,3', '--json'], c.io), 0, c.err.join('\n'));
    const { model, tokenizer } = await load('families/jamba');
    const encoded = tokenizer.encode(await fs.readFile(textFile, 'utf8'));
    const first = { ids: encoded.ids.slice(0, 120), tokens: encoded.tokens.slice(0, 120) };
    assert.deepEqual(JSON.parse(c.out.join('\n')), inMemory(model, first, [1, 3], 0.05, {}));
  });

  it('a run that stops on an error removes its spill', async () => {
    const argv = ['forgotten', '--model', MODEL, '--text', textFile, '--state', '0', '--threshold', '0.001'];
    const refused = capture();
    assert.equal(await main([...argv, '--max-memory', '1'], refused.io), 1);
    const fixedMb = Number(/need (\d+) MB/.exec(refused.err.join('\n'))![1]);
    // The limit passes the weights, the chunk and the results by about 1 MB, then stops a window: at τ = 0.001 state 0 retains every token to the end.
    const c = capture();
    assert.equal(await main([...argv, '--max-memory', String(fixedMb + 1)], c.io), 1, c.err.join('\n'));
    assert.match(c.err.join('\n'), new RegExp(`window of prefix sums would pass the --max-memory limit of ${fixedMb + 1} MB`));
    assert.deepEqual(spillsLeft(), []);
  });
});
