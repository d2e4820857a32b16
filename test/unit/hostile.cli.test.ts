/**
 * Issue "hostile and huge inputs", done-when: each broken input is refused by the built CLI with
 * exit 1 and one line naming the file and the problem, no stack trace, under a 4 GB address-space
 * limit (ulimit -v). A hang would hit spawnSync's timeout and fail the test. The torch.save cases
 * are the hostile files of test/fixtures/pickle (issue 14): none of their code may run.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BUILT_CLI, buildCli } from './buildCli';
import { fixture } from './fixtures';

const CLI = BUILT_CLI;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'mamba-scope-hostile-'));
const MODEL = readFileSync(fixture('mamba1-tiny', 'model.safetensors'));
const CONFIG = readFileSync(fixture('mamba1-tiny', 'config.json'), 'utf8');

/** A model folder with the fixture's files, some of them replaced; `torch` writes pytorch_model.bin instead of safetensors. */
function modelFolder(name: string, files: { config?: string | null; weights?: Uint8Array | null; torch?: Uint8Array; tokenizer?: string }): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir);
  if (files.config !== null) writeFileSync(path.join(dir, 'config.json'), files.config ?? CONFIG);
  if (files.torch) writeFileSync(path.join(dir, 'pytorch_model.bin'), files.torch);
  else if (files.weights !== null) writeFileSync(path.join(dir, 'model.safetensors'), files.weights ?? MODEL);
  if (files.tokenizer !== undefined) writeFileSync(path.join(dir, 'tokenizer.json'), files.tokenizer);
  else copyFileSync(fixture('mamba1-tiny', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  return dir;
}

/** The fixture's safetensors with its JSON header rewritten by `edit` (length prefix fixed up). */
function withHeader(edit: (h: Record<string, { data_offsets: number[]; shape: number[] }>) => void): Uint8Array {
  const n = Number(MODEL.readBigUInt64LE(0));
  const header = JSON.parse(MODEL.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, MODEL.subarray(8 + n)]);
}

const absurdLength = Buffer.from(MODEL);
absurdLength.writeBigUInt64LE(2n ** 62n, 0);
const sample = path.join(tmp, 'sample.py');
writeFileSync(sample, 'def f(x):\n    return x\n');
const empty = path.join(tmp, 'empty.py');
writeFileSync(empty, '');

const hostile = (name: string) => readFileSync(fixture('pickle', 'hostile', name));

const CASES: [label: string, model: () => string, text: string, problem: RegExp][] = [
  ['a truncated checkpoint', () => modelFolder('truncated', { weights: MODEL.subarray(0, MODEL.length - 1000) }), sample, /model\.safetensors: tensor ".+" ends at byte \d+ of the data area/],
  ['an absurd header length', () => modelFolder('absurd', { weights: absurdLength }), sample, /model\.safetensors: declares a \d+-byte header; safetensors allows at most 100000000/],
  ['a header that is not JSON', () => modelFolder('nonjson', { weights: Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{oops')]) }), sample, /model\.safetensors: header is not valid JSON/],
  ['overlapping tensors', () => modelFolder('overlap', { weights: withHeader((h) => { h['backbone.norm_f.weight'].data_offsets = [...h['backbone.layers.1.norm.weight'].data_offsets]; }) }), sample, /model\.safetensors: tensors ".+" and ".+" overlap/],
  ['an offset past the end', () => modelFolder('range', { weights: withHeader((h) => { h['backbone.norm_f.weight'].data_offsets = [1e9, 1e9 + 512]; }) }), sample, /model\.safetensors: tensor "backbone\.norm_f\.weight" ends at byte 1000000512/],
  ['a shape that disagrees with the config', () => modelFolder('shape', { config: CONFIG.replace('"state_size": 16', '"state_size": 8') }), sample, /model\.safetensors: tensor ".+" has shape \[\d+(, \d+)*\] but config \(mamba1\) implies/],
  ['a missing tensor', () => modelFolder('missing', { weights: withHeader((h) => { delete h['backbone.layers.1.mixer.D']; }) }), sample, /model\.safetensors: is missing tensor "backbone\.layers\.1\.mixer\.D"/],
  ['a broken config.json', () => modelFolder('config', { config: '{"model_type": "mamba",' }), sample, /config\.json: is not valid JSON/],
  ['a config.json of another model', () => modelFolder('llama', { config: '{"model_type": "llama"}' }), sample, /config\.json: model_type "llama" is not a Mamba config/],
  ['a broken tokenizer.json', () => modelFolder('tokenizer', { tokenizer: '{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}' }), sample, /tokenizer\.json: model\.vocab\["a"\] has id -1/],
  ['missing weights', () => modelFolder('noweights', { weights: null }), sample, /noweights: has no model weights \(none of model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json\)/],
  ['a torch checkpoint calling os.system', () => modelFolder('torch-exec', { torch: hostile('exec-os-system.bin') }), sample, /torch-exec\/pytorch_model\.bin: archive\/data\.pkl, byte 37 \(GLOBAL\): forbidden global posix\.system/],
  ['a torch checkpoint calling eval', () => modelFolder('torch-eval', { torch: hostile('exec-eval.bin') }), sample, /torch-eval\/pytorch_model\.bin: archive\/data\.pkl, byte 13 \(GLOBAL\): forbidden global __builtin__\.eval/],
  ['a bare pickle calling os.system', () => modelFolder('torch-raw', { torch: hostile('raw-pickle-os-system.bin') }), sample, /torch-raw\/pytorch_model\.bin: pickle 1 \(magic number\), byte 2 \(GLOBAL\): forbidden global posix\.system/],
  ['a torch checkpoint missing a storage', () => modelFolder('torch-missing', { torch: hostile('missing-storage.bin') }), sample, /torch-missing\/pytorch_model\.bin: pytorch_model\/data\.pkl uses storage 0, but the archive has no record pytorch_model\/data\/0/],
  ['a torch checkpoint with a truncated storage', () => modelFolder('torch-short', { torch: hostile('truncated-storage.bin') }), sample, /torch-short\/pytorch_model\.bin: tensor ".+" .* needs 1024 bytes of record pytorch_model\/data\/9, which has 341 \(truncated\?\)/],
  ['a truncated torch zip', () => modelFolder('torch-cut', { torch: readFileSync(fixture('pickle', 'mamba1-hf-f32', 'pytorch_model.bin')).subarray(0, 732740) }), sample, /torch-cut\/pytorch_model\.bin: has no zip end-of-central-directory record/],
  ['an empty sample', () => fixture('mamba1-tiny'), empty, /empty\.py: has no tokens \(empty sample\)/],
];

describe('hostile inputs through the built CLI, under a 4 GB address-space limit', function () {
  this.timeout(60_000);
  // Running the hostile pickles' code would create this file.
  const ran = '/tmp/mamba-scope-pickle-ran';
  before(() => rmSync(ran, { force: true }));
  before(buildCli);
  after(() => assert.ok(!existsSync(ran), `${ran} exists: a pickle ran`));
  for (const [label, model, text, problem] of CASES) {
    it(`refuses ${label} with one clear line`, () => {
      const args = ['inspect', '--model', model(), '--text', text, '--out', path.join(tmp, 'out.safetensors')].map((a) => `'${a}'`).join(' ');
      const r = spawnSync('bash', ['-c', `ulimit -v 4194304 && exec node '${CLI}' ${args}`], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 1, `exit ${r.status} (signal ${r.signal}): ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], problem);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  }
});
