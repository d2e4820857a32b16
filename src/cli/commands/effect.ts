/**
 * `mamba-scope effect <clean> <intervened>`: what an intervention changed downstream
 * (src/engine/analysis/effect.ts), from two inspect dumps of the same tokens: per position the
 * KL divergence of the next-token distributions and the change in next-token loss, and with
 * --target the probability and logit of one token. --json prints the arrays.
 */
import { interventionEffect } from '../../engine/analysis/effect';
import { InputError } from '../../engine/errors';
import type { TensorStore } from '../../engine/formats/safetensors';
import { openTensorFile } from '../../engine/formats/tensorFile';
import { NodeFileSource } from '../../node/files';
import { flag, optional, parseArgs, UsageError } from '../args';
import type { Command } from '../command';

const USAGE = `usage: mamba-scope effect <clean> <intervened> [--target TOKEN_ID] [--json]

Two inspect dumps of the same tokens, the second with --intervene. Per position t: KL(p_clean ‖
p_intervened) of the next-token distributions (nats) and the change in the loss of the token
that follows; with --target, that token's probability in each run and its logit change.
Prints the first position that changed, the largest KL and where, and the means from there on.
  --json   {"firstChanged", "kl": [L], "dLoss": [L-1], "target": {"id", "clean", "intervened", "dLogit"}}`;

async function open(path: string): Promise<TensorStore> {
  return openTensorFile(await NodeFileSource.open(path));
}

async function logitsOf(store: TensorStore): Promise<{ shape: readonly number[]; data: Float64Array }> {
  if (store.info('positions')) throw new InputError(store.name, 'is a long-mode dump (logits at some positions only): effect needs the full logits, from inspect without --positions');
  if (!store.info('logits')) throw new InputError(store.name, 'has no logits: not an inspect dump');
  return (await store.readFloat('logits', 'float64')) as { shape: readonly number[]; data: Float64Array };
}

export const effect: Command = {
  name: 'effect',
  summary: 'what an intervention changed: KL and loss change per position, against the clean dump',
  usage: USAGE,
  async run(argv, io) {
    const files = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--target');
    if (files.length !== 2) throw new UsageError(`needs the clean and the intervened dump; got ${files.length} files`);
    const args = parseArgs(argv.filter((a) => !files.includes(a)), { target: { value: true }, json: { value: false } });
    const [clean, intervened] = [await open(files[0]), await open(files[1])];
    const ids = (await clean.readNative('input_ids')).data as Int32Array;
    const otherIds = (await intervened.readNative('input_ids')).data as Int32Array;
    if (ids.length !== otherIds.length || ids.some((v, i) => v !== otherIds[i])) throw new InputError(files[1], `holds other tokens than ${files[0]}: effect compares two runs of the same input`);
    const [a, b] = [await logitsOf(clean), await logitsOf(intervened)];
    if (a.shape[1] !== b.shape[1]) throw new InputError(files[1], `has ${b.shape[1]} logits per position, ${files[0]} ${a.shape[1]}: not the same model`);
    const targetText = optional(args, 'target');
    if (targetText !== undefined && !/^\d+$/.test(targetText)) throw new UsageError(`--target must be a token id (an integer ≥ 0); got "${targetText}"`);
    const target = targetText === undefined ? undefined : Number(targetText);
    if (target !== undefined && target >= a.shape[1]) throw new UsageError(`--target ${target} is outside the ${a.shape[1]}-token vocabulary`);
    const e = interventionEffect(a, b, ids, target);
    if (flag(args, 'json')) {
      io.out(JSON.stringify({ firstChanged: e.firstChanged, kl: [...e.kl], dLoss: [...e.dLoss], ...(e.target ? { target: { id: e.target.id, clean: [...e.target.clean], intervened: [...e.target.intervened], dLogit: [...e.target.dLogit] } } : {}) }));
      return 0;
    }
    io.out(`intervention ${intervened.metadata.interventions ?? '(none recorded)'}`);
    if (e.firstChanged === null) {
      io.out('no change: every next-token distribution is the same');
      return 0;
    }
    const from = e.firstChanged;
    const after = (x: Float64Array) => x.subarray(from).reduce((s, v) => s + v, 0) / Math.max(1, x.length - from);
    let worst = from;
    e.kl.forEach((v, t) => (v > e.kl[worst] ? (worst = t) : undefined));
    io.out(`first change at position ${from} (of ${ids.length})`);
    io.out(`KL        max ${e.kl[worst].toExponential(3)} nats at ${worst}; mean ${after(e.kl).toExponential(3)} from ${from} on`);
    io.out(`loss      mean change ${after(e.dLoss).toExponential(3)} nats/token from ${from} on`);
    if (e.target) io.out(`target ${e.target.id}  p at ${worst}: ${e.target.clean[worst].toExponential(3)} → ${e.target.intervened[worst].toExponential(3)}`);
    return 0;
  },
};
