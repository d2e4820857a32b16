/**
 * `mamba-scope forgotten`: which tokens each layer forgot, and where. Runs the float64 reference
 * forward on a text, then the retention analysis (src/engine/analysis/retention.ts) per layer.
 * --json prints the contract of issue 6 and nothing else, so scripts can diff it.
 */
import { ChannelMemory, DEFAULT_HORIZON, type ChannelMemoryReport } from '../../engine/analysis/channelMemory';
import { DEFAULT_BUCKET, PositionBuckets, stateNorms, trendText, type PositionBucket } from '../../engine/analysis/positionBuckets';
import { DEFAULT_THRESHOLD, layerDecay, Retention, type ResetEvent, type RetentionView } from '../../engine/analysis/retention';
import { InputError, LimitError } from '../../engine/errors';
import { isLanguageModel } from '../../engine/model/graph';
import { interventionEffect } from '../../engine/analysis/effect';
import { layerEdits } from '../../engine/interventions';
import { editedModel } from '../../engine/interventionInputs';
import { referenceForward, referenceForwardChunked } from '../../engine/reference/forward';
import { RetentionStream } from '../../engine/analysis/retentionStream';
import type { InternalName } from '../../engine/internals';
import type { Tensor } from '../../engine/tensor';
import { RowSpill } from '../../node/rowSpill';
import { stateSize } from '../../engine/model/config';
import { flag, layerList, nonNegativeInt, number, optional, parseArgs, positiveInt, required, UsageError } from '../args';
import type { Command, CommandIO } from '../command';
import { streamValues } from '../../engine/model/load';
import { loadModelArg, loadTokenizer, readTextFile } from '../modelArgs';
import { forwardWork, layerTicks, parameterCount, MAX_SECONDS_OPTION, MAX_SECONDS_USAGE, maxSecondsOf, RATES, RunBudget } from '../runBudget';
import { scanOf } from '../../engine/layers/kind';

export interface ForgottenToken {
  readonly index: number;
  readonly token: string;
  /** First t with R(s→t) < τ; null when the token is retained to the end. */
  readonly forgottenAt: number | null;
  /** R(s→L−1). */
  readonly retentionAtEnd: number;
  /**
   * With --causal: the mean KL of the next-token distributions from forgottenAt on when s's write
   * is ablated in this layer, and whether it stays under ε (forgotten by its effect too).
   */
  readonly effectAfterForgotten?: number;
  readonly causallyForgotten?: boolean;
}

/** A layer's effective memory per channel (channelMemory.ts), as --json writes it. */
export interface LayerMemory {
  readonly horizon: number;
  /** Channels whose effective memory reaches the horizon, and the rest. */
  readonly global: number;
  readonly local: number;
  /** M_d in tokens per channel (Mamba-2: per head); null where retention never falls to τ. */
  readonly channels: (number | null)[];
}

export interface ForgottenLayer {
  readonly layer: number;
  readonly tokens: ForgottenToken[];
  readonly memory: LayerMemory;
  /** Δ and resets against position, per --bucket tokens (positionBuckets.ts). */
  readonly positions: PositionBucket[];
}

export interface ForgottenReport {
  readonly threshold: number;
  layers: ForgottenLayer[];
}

/** Tokens per chunk of the streamed run: its states after every token ([chunk, D, N] of one layer at a time, for ‖h_t‖ per bucket) stay near 100 MB at mamba-130m. */
export const FORGOTTEN_CHUNK = 512;

const USAGE = `usage: mamba-scope forgotten [--model <dir>] --text <file> [--threshold τ] [--layers all|0,2]
                              [--channel d] [--state n] [--horizon N] [--bucket N] [--max-tokens N]
                              [--max-memory MB] [--causal ε] [--max-seconds S] [--json]

For every token s and layer ℓ: the first position t where the share of s's write still in the
state, R_ℓ(s→t) = mean_{d,n} exp(A[d,n]·Σ_{s<k≤t} Δ_k[d]), drops below τ (forgottenAt; null
when retained to the end), and R_ℓ(s→L−1). Per layer and channel d, its effective memory: the
tokens back at which a write at the channel's mean Δ over the text keeps τ of itself,
mean_n exp(A[d,n]·M_d·Δ̄_d) = τ, the channel global when M_d reaches --horizon, else local; and
Δ's mean and max, ‖h_t‖'s mean and max and the share of reset events per --bucket positions. Float64 reference forward, streamed: the text in
${FORGOTTEN_CHUNK}-token chunks with each layer's state carried, each layer's prefix sums of Δ spilled
to a temp file in the OS temp folder (8·L·D bytes per layer, removed after) for R(s→L−1); with
--causal, or on a hybrid (attention carries no state across chunks), one whole-sequence forward.

  --model <dir>     Hugging Face Mamba folder with tokenizer.json (default: the bundled mamba1-demo)
  --text <file>     UTF-8 text to analyse
  --threshold τ     in (0, 1]; default ${DEFAULT_THRESHOLD}
  --layers <list>   all (default) or comma-separated layer indices (negative counts from the end)
  --channel d       retention of one channel d only (the mean over its states; Mamba-2: head d)
  --state n         retention of one state n only (the mean over channels); with --channel: that one pair
  --horizon N       tokens a global channel's memory reaches (default ${DEFAULT_HORIZON}, the context Mamba was trained at)
  --bucket N        positions per bucket of the statistics against position (default ${DEFAULT_BUCKET})
  --max-tokens N    keep only the first N tokens (a note says so)
  --max-memory MB   refuse, before any work, a run whose weights, chunk and results would exceed this, and stop a
                    layer whose window of prefix sums (the current token's lifetime) would (default 4096);
                    with --causal: the whole run's weights, Δ and prefix sums
  --causal ε        check each forgotten token by ablation (docs/INTERVENTIONS.md): its write in the layer
                    removed, the mean KL of the outputs from forgottenAt on; causally forgotten when < ε
                    (one float64 forward per forgotten token and layer)
  --json            {"threshold", "layers": [{"layer", "tokens": [{"index", "token", "forgottenAt", "retentionAtEnd"}],
                      "memory": {"horizon", "global", "local", "channels": [M_d | null]},
                      "positions": [{"start", "tokens", "meanDelta", "maxDelta", "resetShare", "meanStateNorm", "maxStateNorm"}]}]}
                    without it: a summary per layer, its channels' memory, Δ and ‖h_t‖ by position, the reset events
                    (t where the step kept < τ of the state), and the run's time
${MAX_SECONDS_USAGE}`;

export const forgotten: Command = {
  name: 'forgotten',
  summary: 'which tokens each layer forgot, and where (retention below a threshold)',
  usage: USAGE,
  async run(argv: readonly string[], io: CommandIO): Promise<number> {
    const args = parseArgs(argv, {
      model: { value: true }, text: { value: true }, threshold: { value: true }, layers: { value: true }, json: { value: false },
      channel: { value: true }, state: { value: true }, horizon: { value: true }, bucket: { value: true }, 'max-tokens': { value: true }, 'max-memory': { value: true }, causal: { value: true }, ...MAX_SECONDS_OPTION,
    });
    const budget = new RunBudget('forgotten', io, maxSecondsOf(args));
    const channel = nonNegativeInt(args, 'channel');
    const state = nonNegativeInt(args, 'state');
    const view: RetentionView = { ...(channel === undefined ? {} : { channel }), ...(state === undefined ? {} : { state }) };
    const threshold = number(args, 'threshold') ?? DEFAULT_THRESHOLD;
    if (!(threshold > 0 && threshold <= 1)) throw new UsageError(`--threshold must be in (0, 1]; got ${threshold}`);
    const horizon = positiveInt(args, 'horizon') ?? DEFAULT_HORIZON;
    const bucket = positiveInt(args, 'bucket') ?? DEFAULT_BUCKET;
    const textPath = required(args, 'text');
    const text = await readTextFile(textPath);
    const { dir: modelDir, model } = await loadModelArg(optional(args, 'model'), 'float64');
    if (!isLanguageModel(model)) throw new InputError(modelDir, 'is a simplified block without tokens: forgotten needs a Mamba language model');
    const tokenizer = await loadTokenizer(modelDir);
    let encoded = tokenizer.encode(text);
    if (encoded.ids.length === 0) throw new InputError(textPath, 'has no tokens: nothing to analyse');
    const maxTokens = positiveInt(args, 'max-tokens');
    if (maxTokens !== undefined && encoded.ids.length > maxTokens) {
      io.err(`note: keeping the first ${maxTokens} of ${encoded.ids.length} tokens (--max-tokens)`);
      encoded = { ...encoded, ids: encoded.ids.slice(0, maxTokens), tokens: encoded.tokens.slice(0, maxTokens) };
    }
    const layers = layerList(args, 'layers', model.config.nLayer);
    // A retention channel is a column of Δ: a channel (Mamba-1) or a head (Mamba-2).
    const { deltaWidth: channels, deltaUnit, channels: stateChannels } = scanOf(model.layers[0]);
    // Values of one layer's state after one token (D·N, Mamba-2: heads·P·N): ‖h_t‖ per bucket reads every token's.
    const stateValues = stateChannels * stateSize(model.config);
    if (channel !== undefined && channel >= channels) throw new UsageError(`--channel ${channel} is outside the model's ${channels} ${deltaUnit}`);
    if (state !== undefined && state >= stateSize(model.config)) throw new UsageError(`--state ${state} is outside the model's ${stateSize(model.config)} states`);

    const L = encoded.ids.length;
    const causal = number(args, 'causal');
    if (causal !== undefined && !(causal > 0)) throw new UsageError(`--causal must be a KL in nats > 0; got ${causal}`);
    const limitMb = positiveInt(args, 'max-memory') ?? 4096;
    // Per layer, forgottenAt (at most 2L), atEnd and resetEvents (L each) evaluate R over D·N decays.
    const retentionWork = 4 * layers.length * L * channels * stateSize(model.config);
    const report: ForgottenReport = { threshold, layers: [] };
    const resets: ResetEvent[][] = [];
    const source = (layer: number) => `${modelDir} layer ${layer}`;
    // Per kept layer, what the Δ rows feed besides retention: the channels' mean Δ and the buckets against position.
    const memories = layers.map((layer) => new ChannelMemory(layerDecay(model, layer).A, source(layer)));
    const buckets = layers.map((layer) => new PositionBuckets(channels, bucket, source(layer)));
    const memoryReports: ChannelMemoryReport[] = [];
    const reportLayer = (k: number, at: Int32Array, end: Float64Array, events: ResetEvent[]) => {
      const memory = memories[k].finish(threshold, horizon);
      memoryReports.push(memory);
      resets.push(events);
      report.layers.push({
        layer: layers[k],
        tokens: encoded.tokens.map((token, index) => ({ index, token, forgottenAt: at[index] < 0 ? null : at[index], retentionAtEnd: end[index] })),
        memory: { horizon, global: memory.global, local: memory.local, channels: Array.from(memory.memory, (m) => (Number.isFinite(m) ? m : null)) },
        positions: buckets[k].finish(events),
      });
    };
    // Every kept layer's Δ rows and states feed its channels' memory and its buckets as the run produces them, on either path.
    const slot = new Map(layers.map((layer, k) => [layer, k]));
    const feed = (k: number, internals: Partial<Record<InternalName, Tensor<Float64Array>>>) => {
      memories[k].push(internals.delta!);
      buckets[k].push(internals.delta!, internals.h && stateNorms(internals.h));
    };
    // The whole-sequence run where streaming cannot serve: --causal reads the clean logits at every
    // position and reruns the sequence per forgotten token anyway; a hybrid's attention layers
    // carry no fixed-size state from one chunk to the next.
    let cleanLogits: Tensor<Float64Array> | undefined;
    if (causal === undefined && model.config.arch !== 'hybrid') {
      // The streamed run (issue 13): the sequence in chunks with each layer's state carried, each
      // chunk's Δ rows into a RetentionStream per kept layer, their prefix sums spilled to a temp
      // file for R(s→L−1). It holds the weights, one chunk's stream and Δ, each layer's window of
      // prefix sums (the current token's lifetime, checked as it grows) and the O(L) results.
      const chunk = Math.min(L, FORGOTTEN_CHUNK);
      const fixed = 8 * (parameterCount(model) + streamValues(model.config, chunk) + 2 * layers.length * chunk * channels + chunk * stateValues) + 12 * layers.length * L;
      if (fixed > limitMb * 1e6) throw new LimitError('forgotten', `${L} tokens streamed in ${chunk}-token chunks through ${layers.length} layers need ${(fixed / 1e6).toFixed(0)} MB (weights, Δ and its prefix sums), over the --max-memory limit of ${limitMb} MB: use fewer tokens (--max-tokens), fewer layers (--layers), or raise --max-memory`);
      // What is left of the limit bounds each layer's window of prefix sums (ring growth: up to twice the rows held).
      const maxWindowRows = Math.max(1, Math.floor((limitMb * 1e6 - fixed) / (2 * 8 * channels * layers.length)));
      budget.plan([
        // One phase, two kinds of work: its work is in seconds (rate 1). The chunks skip the lm_head.
        { name: 'forward and retention', work: (forwardWork(model, L) - L * model.lmHead.data.length) / RATES.reference + (3 / 4) * retentionWork / RATES.retentionStep, rate: 1 },
        { name: 'retention at end', work: retentionWork / 4, rate: RATES.retentionStep },
      ], 'use a shorter text or fewer layers (--layers)');
      const streams = layers.map((layer) => new RetentionStream(layerDecay(model, layer).A, L, threshold, view, source(layer), {
        maxWindowRows,
        onWindowLimit: (rows, token) => new LimitError('forgotten', `layer ${layer} still retains token ${token} after ${rows} tokens: its window of prefix sums would pass the --max-memory limit of ${limitMb} MB; raise --max-memory, or use fewer layers (--layers) or a lower --threshold`),
      }));
      const spills: RowSpill[] = [];
      try {
        for (let k = 0; k < layers.length; k++) spills.push(RowSpill.create(channels, 'mamba-scope-forgotten-'));
        await budget.phase('forward and retention', L, (tick) => referenceForwardChunked(model, encoded.ids, {
          chunkLength: chunk,
          withoutHead: true,
          everyStateOf: new Set(layers),
          onProgress: tick,
          onLayer: (layer, internals) => {
            const k = slot.get(layer);
            if (k === undefined) return;
            spills[k].append(streams[k].push(internals.delta!));
            feed(k, internals);
          },
        }));
        await budget.phase('retention at end', layers.length, (tick) => layers.forEach((_, k) => {
          tick(k);
          const end = new Float64Array(L);
          spills[k].forEachBlock(chunk, (rows, start) => streams[k].atEnd(rows, start, end));
          spills[k].remove();
          const { forgottenAt, resets: events } = streams[k].finish();
          reportLayer(k, forgottenAt, end, events);
        }));
      } finally {
        for (const spill of spills) spill.remove();
      }
    } else {
      // The whole sequence as one chunk of the chunked reference, so each layer's states after every token (for ‖h_t‖ per
      // bucket) are reduced to norms as the layer runs and dropped. It holds the weights, each kept layer's Δ and its
      // retention prefix sums ([L, columns] each), one layer's states, the forward's stream and, with --causal, the clean logits.
      const V = model.config.vocabSize;
      const bytes = 8 * (parameterCount(model) + 2 * layers.length * L * channels + L * stateValues + streamValues(model.config, L) + (causal !== undefined ? L * V : 0));
      if (bytes > limitMb * 1e6) throw new LimitError('forgotten', `${L} tokens through ${layers.length} layers in one pass need ${(bytes / 1e6).toFixed(0)} MB (weights, Δ and its prefix sums, one layer's states${causal !== undefined ? ', the clean logits' : ''}), over the --max-memory limit of ${limitMb} MB: use fewer tokens (--max-tokens), fewer layers (--layers), or raise --max-memory`);
      budget.plan([
        { name: 'forward', work: forwardWork(model, L), rate: RATES.reference },
        { name: 'retention', work: retentionWork, rate: RATES.retentionStep },
        // At most one ablated forward per token and layer: the estimate takes every token as forgotten.
        ...(causal !== undefined ? [{ name: 'causal', work: layers.length * L * forwardWork(model, L), rate: RATES.reference }] : []),
      ], 'use a shorter text or fewer layers (--layers)' + (causal !== undefined ? ', or leave out --causal' : ''));
      const deltas = new Map<number, Tensor<Float64Array>>();
      const whole = await budget.phase('forward', model.config.nLayer, (tick) => referenceForwardChunked(model, encoded.ids, {
        chunkLength: L,
        everyStateOf: new Set(layers),
        withoutHead: causal === undefined,
        logitsAt: causal !== undefined ? Array.from({ length: L }, (_, t) => t) : [-1],
        checkCancelled: layerTicks(tick),
        onLayer: (layer, internals) => {
          const k = slot.get(layer);
          if (k === undefined) return;
          deltas.set(layer, internals.delta!);
          feed(k, internals);
        },
      }));
      cleanLogits = whole.logits;
      await budget.phase('retention', layers.length, (tick) => layers.forEach((layer, k) => {
        tick(k);
        const delta = deltas.get(layer)!;
        const retention = Retention.fromLayer(delta, layerDecay(model, layer).A, source(layer));
        reportLayer(k, retention.forgottenAt(threshold, view), retention.atEnd(view), retention.resetEvents(threshold));
      }));
    }

    if (causal !== undefined) {
      const forgottenCount = report.layers.reduce((n, l) => n + l.tokens.filter((t) => t.forgottenAt !== null).length, 0);
      await budget.phase('causal', forgottenCount, (tick) => {
        // The forward above already holds the clean logits.
        const clean = cleanLogits!;
        const edited = editedModel(model.config);
        let done = 0;
        report.layers = report.layers.map((l) => ({
          ...l,
          tokens: l.tokens.map((t) => {
            if (t.forgottenAt === null) return t;
            const edits = layerEdits([{ kind: 'ablate-write', layer: l.layer, tokens: [t.index] }], L, edited);
            const kl = interventionEffect(clean, referenceForward(model, encoded.ids, { layers: [], edits }).logits!, encoded.ids).kl.subarray(t.forgottenAt);
            const effect = kl.reduce((a, b) => a + b, 0) / kl.length;
            tick(++done);
            return { ...t, effectAfterForgotten: effect, causallyForgotten: effect < causal };
          }),
        }));
      });
    }

    if (flag(args, 'json')) {
      io.out(JSON.stringify({ ...report, ...(causal !== undefined ? { causalEpsilon: causal } : {}) }));
    } else {
      const viewName = [channel === undefined ? '' : `channel ${channel}`, state === undefined ? '' : `state ${state}`].filter(Boolean).join(', ');
      io.out(`${textPath}: ${encoded.ids.length} tokens, ${modelDir}, τ = ${threshold}${viewName ? `, ${viewName} only` : ''}`);
      report.layers.forEach((l, i) => io.out(describeLayer(l, resets[i], encoded.tokens, memoryReports[i])));
      if (causal !== undefined) {
        for (const l of report.layers) {
          const checked = l.tokens.filter((t) => t.causallyForgotten !== undefined);
          io.out(`layer ${l.layer}: ${checked.filter((t) => t.causallyForgotten).length} of ${checked.length} forgotten tokens also causally forgotten (ablating the write moves the outputs from then on by < ${causal} nats of KL)`);
        }
      }
    }
    budget.reportTime(flag(args, 'json'));
    return 0;
  },
};

function describeLayer(layer: ForgottenLayer, resets: readonly ResetEvent[], tokens: readonly string[], memory: ChannelMemoryReport): string {
  const forgotten = layer.tokens.filter((t) => t.forgottenAt !== null);
  const lifetimes = forgotten.map((t) => t.forgottenAt! - t.index).sort((a, b) => a - b);
  const lines = [
    `layer ${layer.layer}: ${forgotten.length} of ${layer.tokens.length} tokens forgotten` +
      (lifetimes.length ? ` (after ${lifetimes[0]}–${lifetimes[lifetimes.length - 1]} tokens, median ${lifetimes[Math.floor(lifetimes.length / 2)]})` : '') +
      `, ${layer.tokens.length - forgotten.length} retained to the end`,
    describeMemory(memory),
    describePositions(layer.positions),
  ];
  if (resets.length === 0) {
    lines.push('  no reset events');
  } else {
    lines.push(`  ${resets.length} reset event${resets.length === 1 ? '' : 's'} (the step kept < τ of the state):`);
    for (const r of resets) lines.push(`    t=${r.index} ${JSON.stringify(tokens[r.index])} kept ${r.kept.toPrecision(3)}`);
  }
  return lines.join('\n');
}

const tokensText = (m: number) => (Number.isFinite(m) ? (m < 10 ? m.toFixed(1) : m.toFixed(0)) : '∞');

function describeMemory(m: ChannelMemoryReport): string {
  const sorted = Array.from(m.memory).sort((a, b) => a - b);
  const D = sorted.length;
  return `  effective memory (tokens back a write at the channel's mean Δ keeps τ): median ${tokensText(sorted[Math.floor(D / 2)])}, ` +
    `${tokensText(sorted[0])}–${tokensText(sorted[D - 1])}; ${m.global} of ${D} channels global (≥ ${m.horizon} tokens), ${m.local} local`;
}

function describePositions(buckets: readonly PositionBucket[]): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const norm = (b: PositionBucket) => b.meanStateNorm?.toPrecision(3) ?? '—';
  if (buckets.length === 1) return `  over the text: Δ mean ${buckets[0].meanDelta.toPrecision(3)}, max ${buckets[0].maxDelta.toPrecision(3)}; ‖h_t‖ mean ${norm(buckets[0])}; resets ${pct(buckets[0].resetShare)}`;
  const first = buckets[0], last = buckets[buckets.length - 1];
  return `  by ${first.tokens}-token bucket: Δ mean ${trendText(buckets.map((b) => ({ start: b.start, value: b.meanDelta })), (v) => v.toPrecision(3))}; ` +
    `‖h_t‖ mean ${norm(first)} → ${norm(last)}; resets ${pct(first.resetShare)} → ${pct(last.resetShare)}`;
}
