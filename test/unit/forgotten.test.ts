import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { layerDecay, Retention } from '../../src/engine/analysis/retention';
import { UsageError } from '../../src/cli/args';
import { forgotten, type ForgottenReport } from '../../src/cli/commands/forgotten';
import { decodeUtf8 } from '../../src/engine/io';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import type { Tensor } from '../../src/engine/tensor';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { NodeFolderStore } from '../../src/node/files';
import type { LanguageModel } from '../../src/engine/model/graph';
import type { F64 } from '../../src/engine/reference/ops';
import { lastLayerAblated, meanKl } from './handAblation';

const MODEL = path.join(__dirname, '..', 'fixtures', 'mamba1-tiny');

/**
 * The definition, written independently of retention.ts: for each s, accumulate Σ_{s<k≤t} Δ_k[d]
 * one step at a time (no prefix sums, no sweep) and average exp(A·sum) over every d and n.
 */
function naiveRetention(delta: Tensor, A: Tensor, s: number, t: number, view: { channel?: number; state?: number } = {}): number {
  const [, D] = delta.shape;
  const N = A.shape.length === 2 ? A.shape[1] : 1;
  let total = 0;
  let count = 0;
  for (let d = 0; d < D; d++) {
    if (view.channel !== undefined && d !== view.channel) continue;
    let sum = 0;
    for (let k = s + 1; k <= t; k++) sum += Number(delta.data[k * D + d]);
    for (let n = 0; n < N; n++) {
      if (view.state !== undefined && n !== view.state) continue;
      total += Math.exp(Number(A.data[d * N + n]) * sum);
      count++;
    }
  }
  return total / count;
}

/**
 * R(s→t) for every s ≤ t, [L·L] with row s: walks t forward accumulating Σ_{s<k≤t} Δ_k[d]
 * (no prefix sums, no sweep). O(L²·D·N).
 */
function naiveRetentionRows(delta: Tensor, A: Tensor): Float64Array {
  const [L, D] = delta.shape;
  const N = A.shape.length === 2 ? A.shape[1] : 1;
  const R = new Float64Array(L * L);
  for (let s = 0; s < L; s++) {
    const sums = new Float64Array(D);
    for (let t = s; t < L; t++) {
      if (t > s) for (let d = 0; d < D; d++) sums[d] += Number(delta.data[t * D + d]);
      let total = 0;
      for (let d = 0; d < D; d++) for (let n = 0; n < N; n++) total += Math.exp(Number(A.data[d * N + n]) * sums[d]);
      R[s * L + t] = total / (D * N);
    }
  }
  return R;
}

/** The first t ≥ s with R(s→t) < τ, checking every t; null when there is none. */
function naiveForgottenAt(R: Float64Array, L: number, s: number, tau: number): number | null {
  for (let t = s; t < L; t++) if (R[s * L + t] < tau) return t;
  return null;
}

function capture(): { io: { out: (s: string) => void; err: (s: string) => void }; out: string[]; err: string[] } {
  const out: string[] = [], err: string[] = [];
  return { io: { out: (s) => out.push(s), err: (s) => err.push(s) }, out, err };
}

// Written for this test: the model has never seen it (it was trained on CPython library files).
const TEXT = `class Ledger:
    """Tracks balances; a négative balance raises."""

    def __init__(self, owner, limit=100):
        self.owner = owner
        self.limit = limit
        self.entries = []

    def post(self, amount, memo=""):
        if self.balance() + amount < -self.limit:
            raise ValueError(f"{self.owner}: limit {self.limit} exceeded by {memo!r}")
        self.entries.append((amount, memo))
        return len(self.entries)
`;

describe('forgotten: retention analysis', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mamba-forgotten-'));
    await fs.writeFile(path.join(dir, 'ledger.py'), TEXT);
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('forgotten --json agrees token by token with an independent computation of the definition (mamba1-tiny, unseen text, τ = 0.05 and 0.3)', async () => {
    const files = new NodeFolderStore(MODEL);
    const model = await loadModelFolder(files, 'float64');
    const tokenizer = MambaTokenizer.fromJson(decodeUtf8(await fs.readFile(path.join(MODEL, 'tokenizer.json')), 'tokenizer.json'), 'tokenizer.json');
    const encoded = tokenizer.encode(TEXT);
    const L = encoded.ids.length;
    const forward = referenceForward(model, encoded.ids);
    const naive = forward.layers.map((l) => naiveRetentionRows(l.tensors.delta!, layerDecay(model, l.layer).A));
    for (const tau of [0.05, 0.3]) {
      const { io, out } = capture();
      assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--threshold', String(tau), '--json'], io), 0);
      assert.equal(out.length, 1);
      const report = JSON.parse(out[0]) as ForgottenReport;
      assert.deepEqual(Object.keys(report), ['threshold', 'layers']);
      assert.equal(report.threshold, tau);
      assert.deepEqual(report.layers.map((l) => l.layer), [0, 1]);
      let forgottenCount = 0;
      for (const layer of report.layers) {
        const R = naive[layer.layer];
        assert.equal(layer.tokens.length, L);
        for (const tok of layer.tokens) {
          const s = tok.index;
          assert.deepEqual(Object.keys(tok), ['index', 'token', 'forgottenAt', 'retentionAtEnd']);
          assert.equal(tok.token, encoded.tokens[s]);
          const want = naiveForgottenAt(R, L, s, tau);
          assert.equal(tok.forgottenAt, want, `τ=${tau} layer ${layer.layer} token ${s}`);
          const end = R[s * L + L - 1];
          assert.ok(Math.abs(tok.retentionAtEnd - end) <= 1e-12 * Math.max(1, end), `τ=${tau} layer ${layer.layer} token ${s} retentionAtEnd`);
          if (want !== null) forgottenCount++;
        }
      }
      // The comparison is only meaningful if both outcomes occur.
      assert.ok(forgottenCount > 0 && forgottenCount < 2 * L, `τ=${tau}: ${forgottenCount} of ${2 * L} forgotten`);
    }
  });

  it('forgotten --channel/--state --json follows the definition restricted to that channel and state', async () => {
    const model = await loadModelFolder(new NodeFolderStore(MODEL), 'float64');
    const tokenizer = MambaTokenizer.fromJson(decodeUtf8(await fs.readFile(path.join(MODEL, 'tokenizer.json')), 'tokenizer.json'), 'tokenizer.json');
    const ids = tokenizer.encode(TEXT).ids;
    const L = ids.length;
    const delta = referenceForward(model, ids, { layers: [1] }).layers[0].tensors.delta!;
    const A = layerDecay(model, 1).A;
    for (const view of [{ channel: 7 }, { state: 3 }, { channel: 7, state: 3 }]) {
      const { io, out } = capture();
      const flags = Object.entries(view).flatMap(([k, v]) => [`--${k}`, String(v)]);
      assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--layers', '1', '--threshold', '0.3', ...flags, '--json'], io), 0);
      const [layer] = (JSON.parse(out[0]) as ForgottenReport).layers;
      for (const tok of layer.tokens) {
        let want: number | null = null;
        for (let t = tok.index; t < L && want === null; t++) if (naiveRetention(delta, A, tok.index, t, view) < 0.3) want = t;
        assert.equal(tok.forgottenAt, want, `${JSON.stringify(view)} token ${tok.index}`);
      }
    }
    const { io, err } = capture();
    await assert.rejects(forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--channel', '256'], io), /--channel 256 is outside the model's 256 channels/);
    assert.deepEqual(err, []);
  });

  it('Retention matches the definition for every view, on random Δ and A (Mamba-1 [D,N] and per-head [D] A)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.integer(),
        fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        (L, D, N, perHead, seed, tau) => {
          let x = seed >>> 0;
          const r = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
          const delta = { shape: [L, D], data: Float64Array.from({ length: L * D }, () => r() * 2) };
          const A = perHead
            ? { shape: [D], data: Float64Array.from({ length: D }, () => -0.05 - 3 * r()) }
            : { shape: [D, N], data: Float64Array.from({ length: D * N }, () => -0.05 - 3 * r()) };
          const ret = Retention.fromLayer(delta, A);
          const states = perHead ? 1 : N;
          const views = [{}, { channel: D - 1 }, { state: states - 1 }, { channel: 0, state: 0 }];
          for (const view of views) {
            const m = ret.matrix(view);
            for (let t = 0; t < L; t++) {
              for (let s = 0; s <= t; s++) {
                const want = naiveRetention(delta, A, s, t, view);
                assert.ok(Math.abs(ret.between(s, t, view) - want) < 1e-12);
                assert.ok(Math.abs(m.data[t * L + s] - want) < 1e-12);
              }
            }
            const at = ret.forgottenAt(tau, view);
            for (let s = 0; s < L; s++) {
              let first = -1;
              for (let t = s; t < L && first < 0; t++) if (naiveRetention(delta, A, s, t, view) < tau) first = t;
              assert.equal(at[s], first, `view ${JSON.stringify(view)} s=${s}`);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reset events are the positions whose own step kept less than τ', () => {
    const A = { shape: [2, 1], data: Float64Array.from([-1, -2]) };
    // Step 2 has Δ = 10 in both channels: exp(-10), exp(-20) → the state is wiped there.
    const delta = { shape: [4, 2], data: Float64Array.from([0.1, 0.1, 0.2, 0.2, 10, 10, 0.5, 0.5]) };
    const events = Retention.fromLayer(delta, A).resetEvents(0.05);
    assert.deepEqual(events.map((e) => e.index), [2]);
    assert.ok(Math.abs(events[0].kept - (Math.exp(-10) + Math.exp(-20)) / 2) < 1e-18);
  });

  it('rejects Δ < 0, A > 0 (A_log passed by mistake) and a threshold outside (0, 1]', () => {
    const A = { shape: [1, 1], data: Float64Array.from([-1]) };
    assert.throws(() => Retention.fromLayer({ shape: [2, 1], data: Float64Array.from([0.1, -0.1]) }, A), /delta\[1, 0\] = -0.1 is not ≥ 0/);
    assert.throws(() => Retention.fromLayer({ shape: [2, 1], data: Float64Array.from([0.1, 0.1]) }, { shape: [1, 1], data: Float64Array.from([0.5]) }), /not A_log/);
    const ret = Retention.fromLayer({ shape: [2, 1], data: Float64Array.from([0.1, 0.1]) }, A);
    assert.throws(() => ret.forgottenAt(0), RangeError);
    assert.throws(() => ret.forgottenAt(1.5), RangeError);
  });

  it('forgotten: text mode summarises each layer; bad options are usage errors', async () => {
    const { io, out } = capture();
    assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--layers', '-1'], io), 0);
    assert.match(out[0], /ledger\.py: \d+ tokens/);
    assert.match(out[1], /^layer 1: \d+ of \d+ tokens forgotten/);
    assert.equal(out.length, 2);
    await assert.rejects(forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--layers', '2'], io), UsageError);
    await assert.rejects(forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--threshold', '0'], io), UsageError);
    await assert.rejects(forgotten.run(['--model', MODEL], io), UsageError);
    await assert.rejects(forgotten.run(['--model', MODEL, '--text', path.join(dir, 'missing.py')], io), /missing\.py: cannot be read/);
  });

  it('forgotten --causal ε checks each forgotten token by ablating its write: the mean KL from forgottenAt on, as a hand recomputation gives it', async () => {
    const { io, out } = capture();
    assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--layers', '1', '--max-tokens', '60', '--threshold', '0.3', '--causal', '1e-3', '--json'], io), 0);
    const report = JSON.parse(out[0]) as ForgottenReport & { causalEpsilon: number };
    assert.equal(report.causalEpsilon, 1e-3);
    const tokens = report.layers[0].tokens;
    const checked = tokens.filter((t) => t.forgottenAt !== null);
    assert.ok(checked.length > 0, 'some tokens are forgotten at τ = 0.3');
    for (const t of tokens) assert.equal(t.causallyForgotten === undefined, t.forgottenAt === null, `token ${t.index}: checked exactly when forgotten`);
    for (const t of checked) assert.equal(t.causallyForgotten, t.effectAfterForgotten! < 1e-3);
    const model = (await loadModelFolder(new NodeFolderStore(MODEL), 'float64')) as LanguageModel<'float64'>;
    const tokenizer = MambaTokenizer.fromJson(decodeUtf8(await fs.readFile(path.join(MODEL, 'tokenizer.json')), 'tokenizer.json'), 'tokenizer.json');
    const ids = tokenizer.encode(TEXT).ids.slice(0, 60);
    const clean = referenceForward(model, ids);
    for (const t of [checked[0], checked[checked.length - 1]]) {
      const want = meanKl(clean.logits! as F64, lastLayerAblated(model, clean, t.index), t.forgottenAt!);
      assert.ok(Math.abs(t.effectAfterForgotten! - want) <= 1e-9 * want + 1e-15, `token ${t.index}: ${t.effectAfterForgotten} vs ${want}`);
    }
  });

  it('forgotten --max-tokens keeps the first N tokens, and --max-memory refuses before any work', async () => {
    const { io, out, err } = capture();
    assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--max-tokens', '25', '--json'], io), 0);
    const report = JSON.parse(out[0]) as ForgottenReport;
    assert.deepEqual(report.layers.map((l) => l.tokens.length), [25, 25]);
    assert.match(err.join('\n'), /keeping the first 25 of \d+ tokens \(--max-tokens\)/);
    await assert.rejects(forgotten.run(['--model', MODEL, '--text', path.join(dir, 'ledger.py'), '--max-memory', '1'], io), /need \d+ MB \(weights, Δ and its prefix sums\), over the --max-memory limit of 1 MB: use fewer tokens \(--max-tokens\)/);
  });
});
