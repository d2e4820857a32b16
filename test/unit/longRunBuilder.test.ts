/**
 * The panel's long run keeps the next-token loss at every position (webview/long/builder.ts):
 * from the log-probability where the engine gives one (the native engine's kernel), so the loss
 * stays finite where the fp32 probability underflows; from −log of the probability otherwise.
 */
import assert from 'node:assert/strict';
import type { ModelConfig } from '../../src/engine/model/config';
import type { RunParams } from '../../src/protocol';
import { predictionRows } from '../../webview/inspection';
import { LongRunBuilder } from '../../webview/long/builder';

const L = 6;
const params = { runId: 'r', modelId: 'm', sampleName: 's', ids: new Int32Array(L).buffer, tokens: Array<string>(L).fill('x'), offsets: [], settings: {} } as unknown as RunParams;
const model = { id: 'm', name: 'm', config: {} as ModelConfig, scans: [], vocab: null };
const logProb = Float32Array.from([-300, -2, -150, -0.5, -1000, NaN]);
const rows = (extra: object) => ({ k: 1, ids: new Int32Array(L), probs: new Float32Array(L), nextProb: logProb.map(Math.exp), nextRank: new Int32Array(L), ...extra });

describe('the panel\'s long run: the loss at every position', () => {
  it('is the negated log-probability where the engine gives one: finite past fp32\'s ~103 nats', async () => {
    const b = new LongRunBuilder(params, model, 0.05, 1);
    // Through predictionRows, as longRunInChunks hands a chunk's rows over.
    await b.addChunk(0, [], predictionRows(rows({ nextLogProb: logProb }), 0, L));
    assert.deepEqual(Array.from(b.finish().nll), [300, 2, 150, 0.5, 1000]);
  });

  it('is −log of the probability otherwise, as the tfjs engines give it (infinite where it underflowed)', async () => {
    const b = new LongRunBuilder(params, model, 0.05, 1);
    await b.addChunk(0, [], rows({}));
    const nll = Array.from(b.finish().nll);
    assert.deepEqual([nll[0], nll[2], nll[4]], [Infinity, Infinity, Infinity]);
    assert.ok(Math.abs(nll[1] - 2) < 1e-6 && Math.abs(nll[3] - 0.5) < 1e-6);
  });
});
