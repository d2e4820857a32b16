/**
 * Issue 13 item 4: each channel's effective memory (channelMemory.ts) and Δ against position in
 * buckets (positionBuckets.ts), alone and in `forgotten`. Expected values come from closed forms,
 * from Retention's own lifetimes on a constant Δ (where the mean Δ is every step's Δ, so the
 * effective memory is exactly the lifetime), and from the forward's Δ summed here by hand.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChannelMemory, tokensUntil } from '../../src/engine/analysis/channelMemory';
import { PositionBuckets } from '../../src/engine/analysis/positionBuckets';
import { layerDecay, Retention } from '../../src/engine/analysis/retention';
import { forgotten, type ForgottenReport } from '../../src/cli/commands/forgotten';
import { decodeUtf8 } from '../../src/engine/io';
import { loadModelFolder } from '../../src/engine/model/load';
import { referenceForward } from '../../src/engine/reference/forward';
import { MambaTokenizer } from '../../src/engine/tokenizer';
import { NodeFolderStore } from '../../src/node/files';

const MODEL = path.join(__dirname, '..', 'fixtures', 'mamba1-tiny');

describe('effective memory per channel and Δ against position', () => {
  it('tokensUntil solves mean_n exp(−r_n·m) = τ: the closed form for one rate, never for a share of zero rates ≥ τ', () => {
    assert.equal(tokensUntil(0.05, [0.1]), Math.log(20) / 0.1);
    assert.ok(Math.abs(tokensUntil(0.05, [0.1, 0.1]) - Math.log(20) / 0.1) < 1e-9, 'two equal rates: the bisection finds the one rate\'s answer');
    assert.equal(tokensUntil(0.3, [0.2, 0]), Infinity, 'half the states never decay: the mean stays ≥ 0.5');
    // (exp(−0.2 m) + 1) / 2 = 0.6 → exp(−0.2 m) = 0.2.
    assert.ok(Math.abs(tokensUntil(0.6, [0.2, 0]) - Math.log(5) / 0.2) < 1e-9);
    const m = tokensUntil(0.1, [0.5, 0.01, 2]);
    assert.ok(Math.abs((Math.exp(-0.5 * m) + Math.exp(-0.01 * m) + Math.exp(-2 * m)) / 3 - 0.1) < 1e-12);
    assert.equal(tokensUntil(0.1, [0, 0]), Infinity);
  });

  it('on a constant Δ a channel\'s effective memory is its retention lifetime: token 0 is forgotten at ⌊M_d⌋ + 1 in that channel', () => {
    const D = 5, N = 3, L = 400;
    const A = { shape: [D, N], data: Float64Array.from({ length: D * N }, (_, i) => -(0.2 + 0.37 * i)) };
    const perChannel = [0.003, 0.011, 0.05, 0.2, 0.9];
    const delta = { shape: [L, D], data: Float64Array.from({ length: L * D }, (_, i) => perChannel[i % D]) };
    const memory = new ChannelMemory(A);
    memory.push({ shape: [150, D], data: delta.data.subarray(0, 150 * D) });
    memory.push({ shape: [L - 150, D], data: delta.data.subarray(150 * D) });
    const tau = 0.05;
    const report = memory.finish(tau, 100);
    const retention = Retention.fromLayer(delta, A);
    for (let d = 0; d < D; d++) {
      const at = retention.forgottenAt(tau, { channel: d })[0];
      const M = report.memory[d];
      if (M >= L - 1) assert.equal(at, -1, `channel ${d}: M = ${M} reaches past the run, retained`);
      else assert.equal(at, Math.floor(M) + 1, `channel ${d}: M = ${M}`);
      assert.ok(Math.abs(report.meanDelta[d] - perChannel[d]) < 1e-12 * perChannel[d]);
    }
    assert.equal(report.global, Array.from(report.memory).filter((m) => m >= 100).length);
    assert.equal(report.global + report.local, D);
    assert.ok(report.global > 0 && report.local > 0, 'the horizon splits these channels');
  });

  it('buckets hold each bucket\'s mean and max of Δ and its share of reset events, however the rows arrive', () => {
    const D = 3, L = 23;
    const data = Float64Array.from({ length: L * D }, (_, i) => ((i * 7919) % 31) / 10);
    const buckets = new PositionBuckets(D, 8);
    for (const [a, b] of [[0, 5], [5, 6], [6, 17], [17, 23]]) buckets.push({ shape: [b - a, D], data: data.subarray(a * D, b * D) });
    // Events at the buckets' last positions (7, 15) and first (16) count where they are.
    const got = buckets.finish([2, 7, 9, 15, 16].map((index) => ({ index, kept: 0 })));
    assert.deepEqual(got.map((b) => [b.start, b.tokens]), [[0, 8], [8, 8], [16, 7]]);
    for (const b of got) {
      const values = Array.from(data.subarray(b.start * D, (b.start + b.tokens) * D));
      assert.ok(Math.abs(b.meanDelta - values.reduce((x, y) => x + y, 0) / values.length) < 1e-12);
      assert.equal(b.maxDelta, Math.max(...values));
    }
    assert.deepEqual(got.map((b) => b.resetShare), [2 / 8, 2 / 8, 1 / 7]);
  });

  it('forgotten --json gives every layer its channels\' memory and Δ and ‖h_t‖ by position, from the forward\'s own Δ and states', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mamba-memory-'));
    try {
      const text = 'def area(w, h):\n    return w * h\n\nfor side in range(1, 40):\n    print(side, area(side, side + 1))\n'.repeat(4);
      await fs.writeFile(path.join(dir, 'area.py'), text);
      const out: string[] = [];
      const tau = 0.05, horizon = 60, bucket = 32;
      assert.equal(await forgotten.run(['--model', MODEL, '--text', path.join(dir, 'area.py'), '--horizon', String(horizon), '--bucket', String(bucket), '--json'], { out: (s) => out.push(s), err: () => {} }), 0);
      const report = JSON.parse(out[0]) as ForgottenReport;

      const model = await loadModelFolder(new NodeFolderStore(MODEL), 'float64');
      const tokenizer = MambaTokenizer.fromJson(decodeUtf8(await fs.readFile(path.join(MODEL, 'tokenizer.json')), 'tokenizer.json'), 'tokenizer.json');
      const ids = tokenizer.encode(text).ids;
      const L = ids.length;
      const forward = referenceForward(model, ids, { statesAt: Array.from(ids, (_, t) => t) });
      for (const layer of report.layers) {
        const delta = forward.layers[layer.layer].tensors.delta!;
        const D = delta.shape[1];
        const A = layerDecay(model, layer.layer).A;
        const N = A.shape[1];
        assert.equal(layer.memory.channels.length, D);
        let global = 0;
        for (let d = 0; d < D; d++) {
          let sum = 0;
          for (let t = 0; t < L; t++) sum += delta.data[t * D + d];
          const mean = sum / L;
          const M = layer.memory.channels[d];
          assert.ok(M !== null, `layer ${layer.layer} channel ${d} decays`);
          let R = 0;
          for (let n = 0; n < N; n++) R += Math.exp(A.data[d * N + n] * M * mean);
          assert.ok(Math.abs(R / N - tau) < 1e-9, `layer ${layer.layer} channel ${d}: retention ${R / N} after M = ${M} tokens at its mean Δ`);
          if (M >= horizon) global++;
        }
        assert.deepEqual([layer.memory.horizon, layer.memory.global, layer.memory.local], [horizon, global, D - global]);
        assert.equal(layer.positions.length, Math.ceil(L / bucket));
        const resets = Retention.fromLayer(delta, A).resetEvents(tau).map((r) => r.index);
        const h = forward.layers[layer.layer].tensors.h!;
        const S = h.data.length / L;
        for (const b of layer.positions) {
          let sum = 0;
          for (let i = b.start * D; i < (b.start + b.tokens) * D; i++) sum += delta.data[i];
          assert.ok(Math.abs(b.meanDelta - sum / (b.tokens * D)) < 1e-12, `layer ${layer.layer} bucket at ${b.start}: mean Δ`);
          // ‖h_t‖ of the states the whole-sequence forward recorded after every token.
          const norms = Array.from({ length: b.tokens }, (_, k) => Math.hypot(...h.data.subarray((b.start + k) * S, (b.start + k + 1) * S)));
          assert.ok(Math.abs(b.meanStateNorm! - norms.reduce((x, y) => x + y, 0) / b.tokens) < 1e-9 * Math.max(...norms), `layer ${layer.layer} bucket at ${b.start}: mean ‖h_t‖`);
          assert.ok(Math.abs(b.maxStateNorm! - Math.max(...norms)) < 1e-9 * Math.max(...norms), `layer ${layer.layer} bucket at ${b.start}: max ‖h_t‖`);
          assert.equal(b.resetShare, resets.filter((t) => t >= b.start && t < b.start + b.tokens).length / b.tokens);
        }
      }
      assert.ok(report.layers.some((l) => l.memory.global > 0 && l.memory.local > 0), 'a horizon of 60 tokens splits some layer\'s channels');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
