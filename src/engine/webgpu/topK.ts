/**
 * Next-token predictions on the device (the contract of ../predictions.ts, whose topK over
 * float64 logits is the oracle): for each row of a logits block, the k largest logits (ties: the
 * lower id first) with their softmax probabilities, and the probability and rank of the token
 * that follows.
 *
 * One workgroup per row. Each thread walks a strided slice of the vocabulary keeping a sorted
 * top-k in registers, an online softmax (running max and the sum of exp(v − max)) and the count of logits
 * above the next token's; the workgroup then merges them pairwise in a tree.
 *
 * Output (u32 words, floats bitcast), for the whole sequence, rows of this block at rowOffset:
 * ids [L·k] | probs [L·k] | nextLogProb [L] | nextRank [L]; NaN and −1 after the last token.
 * The next token's word is its log-probability, not its probability: with logits spread over more
 * than ~103 (random weights), exp(v − max) of the next token underflows fp32 and its loss would be
 * infinite, while v − max − log(sum) is finite wherever the logits are. decodePredictions gives
 * it as Predictions' nextLogProb, and nextProb as its exp.
 */
import type { Predictions } from '../predictions';
import { barrier, cooperativeThreads, unrolled as each, type KernelSpec } from './kernel';

export function predictionWords(L: number, k: number): number {
  return L * (2 * k + 2);
}

/** The kernel's words for L positions (from byte `at` of `words`) as Predictions. */
export function decodePredictions(words: ArrayBuffer, L: number, k: number, at = 0): Predictions {
  const top = L * k;
  return {
    k,
    ids: new Int32Array(words.slice(at, at + 4 * top)),
    probs: new Float32Array(words.slice(at + 4 * top, at + 8 * top)),
    nextProb: new Float32Array(words, at + 8 * top, L).map(Math.exp),
    nextLogProb: new Float32Array(words.slice(at + 8 * top, at + 8 * top + 4 * L)),
    nextRank: new Int32Array(words.slice(at + 8 * top + 4 * L, at + 4 * predictionWords(L, k))),
  };
}

export function topKKernel(k: number, software: boolean): KernelSpec {
  const THREADS = cooperativeThreads(software, 128);
  const sync = barrier(THREADS);
  return {
    storage: [{ name: 'Logits', type: 'f32' }, { name: 'Ids', type: 'i32' }, { name: 'result', type: 'u32', write: true }],
    // seqLen: the rows of the output's layout; idsLen: the ids there are, one more when the plan holds the id after its last token.
    uniforms: [['vocab', 'i32'], ['rowOffset', 'i32'], ['seqLen', 'i32'], ['idsLen', 'i32']],
    workgroupSize: THREADS,
    entry: 'workgroup',
    body: `
const KK = ${k};
var<workgroup> sMax : array<f32, ${THREADS}>;
var<workgroup> sSum : array<f32, ${THREADS}>;
var<workgroup> sAbove : array<u32, ${THREADS}>;
var<workgroup> sVal : array<f32, ${THREADS * k}>;
var<workgroup> sId : array<i32, ${THREADS * k}>;

// (v, i) ranks before (w, j): larger logit, then lower id; id −1 marks an empty slot.
fn before(v : f32, i : i32, w : f32, j : i32) -> bool {
  return j < 0 || (i >= 0 && (v > w || (v == w && i < j)));
}

fn main(group : vec3<u32>, local : u32) {
  let row = i32(group.x);
  let t = uniforms.rowOffset + row;
  let V = uniforms.vocab;
  let base = row * V;
  var next = -1;
  if (t + 1 < uniforms.idsLen) { next = Ids[t + 1]; }
  var nextLogit = 0.0;
  if (next >= 0) { nextLogit = Logits[base + next]; }

  // The thread's top-k in named registers, best first (generated unrolled: an array indexed by a
  // loop variable may live in memory, and the scan over the vocabulary touches it at every logit).
  ${each(k, (j) => `var val${j} = 0.0;
  var id${j} = -1;`)}
  var m = -3.0e38;
  var s = 0.0;
  var above = 0u;
  for (var i = i32(local); i < V; i = i + ${THREADS}) {
    let v = Logits[base + i];
    if (v > m) { s = s * exp(m - v) + 1.0; m = v; } else { s = s + exp(v - m); }
    if (next >= 0 && v > nextLogit) { above = above + 1u; }
    if (before(v, i, val${k - 1}, id${k - 1})) {
      val${k - 1} = v;
      id${k - 1} = i;
      ${each(k - 1, (q) => {
        const j = k - 1 - q;
        return `if (before(val${j}, id${j}, val${j - 1}, id${j - 1})) { let tv = val${j}; let ti = id${j}; val${j} = val${j - 1}; id${j} = id${j - 1}; val${j - 1} = tv; id${j - 1} = ti; }`;
      })}
    }
  }
  sMax[local] = m;
  sSum[local] = s;
  sAbove[local] = above;
  ${each(k, (j) => `sVal[local * ${k}u + ${j}u] = val${j};
  sId[local * ${k}u + ${j}u] = id${j};`)}
  var vals : array<f32, KK>;
  var ids : array<i32, KK>;
  ${sync}
  for (var stride = ${THREADS >> 1}u; stride > 0u; stride = stride / 2u) {
    if (local < stride) {
      let other = local + stride;
      let m2 = max(sMax[local], sMax[other]);
      sSum[local] = sSum[local] * exp(sMax[local] - m2) + sSum[other] * exp(sMax[other] - m2);
      sMax[local] = m2;
      sAbove[local] = sAbove[local] + sAbove[other];
      // Merge two sorted lists of k into the best k.
      var a = 0u;
      var b = 0u;
      for (var j = 0; j < KK; j = j + 1) {
        let ia = local * ${k}u + a;
        let ib = other * ${k}u + b;
        if (before(sVal[ia], sId[ia], sVal[ib], sId[ib])) {
          vals[j] = sVal[ia]; ids[j] = sId[ia]; a = a + 1u;
        } else {
          vals[j] = sVal[ib]; ids[j] = sId[ib]; b = b + 1u;
        }
      }
      for (var j = 0; j < KK; j = j + 1) {
        sVal[local * ${k}u + u32(j)] = vals[j];
        sId[local * ${k}u + u32(j)] = ids[j];
      }
    }
    ${sync}
  }
  if (local == 0u) {
    let L = uniforms.seqLen;
    let top = L * KK;
    for (var j = 0; j < KK; j = j + 1) {
      result[t * KK + j] = bitcast<u32>(sId[j]);
      result[top + t * KK + j] = bitcast<u32>(exp(sVal[j] - sMax[0]) / sSum[0]);
    }
    if (next >= 0) {
      result[2 * top + t] = bitcast<u32>(nextLogit - sMax[0] - log(sSum[0]));
      result[2 * top + L + t] = sAbove[0];
    } else {
      result[2 * top + t] = 0x7fc00000u;
      result[2 * top + L + t] = 0xffffffffu;
    }
  }
}`,
  };
}
