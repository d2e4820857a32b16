/**
 * The checkpoint the host sent (LoadModelParams), seen as a TensorStore: the tensors that came with
 * the message, and for a streamed model the ones it only named, asked of the host (readWeight)
 * when a layer is read. Each sent tensor is handed out once and then let go (from the message
 * too: a 0.5 GB embedding's wire buffer goes as soon as it is decoded), so the panel never keeps
 * a JS copy of weights that already live in the engine; a second read asks the host again.
 */
import { InputError } from '../src/engine/errors';
import { assertDType, type DType } from '../src/engine/formats/dtypes';
import type { TensorStore } from '../src/engine/formats/safetensors';
import { toFloat32, toFloat64, type Tensor } from '../src/engine/tensor';
import { fromTensorMessage, type LoadModelParams, type TensorMessage } from '../src/protocol';

const WIRE_DTYPES: Readonly<Record<TensorMessage['dtype'], DType>> = { float32: 'F32', int32: 'I32', bfloat16: 'BF16', float16: 'F16' };

export class HostWeightStore implements TensorStore {
  readonly metadata = {};
  private readonly sent: Map<string, TensorMessage>;
  private readonly index = new Map<string, { dtype: DType; shape: readonly number[] }>();

  constructor(
    private readonly params: LoadModelParams,
    private readonly readWeight: (name: string) => Promise<TensorMessage>,
  ) {
    this.sent = new Map(Object.entries(params.tensors));
    for (const [name, m] of this.sent) this.index.set(name, { dtype: WIRE_DTYPES[m.dtype] ?? 'F32', shape: m.shape });
    for (const e of params.streamed ?? []) this.index.set(e.name, { dtype: assertDType(e.dtype, params.name, `tensor "${e.name}"`), shape: e.shape });
  }

  get name(): string {
    return this.params.name;
  }

  names(): string[] {
    return [...this.index.keys()];
  }

  info(name: string) {
    return this.index.get(name);
  }

  private async take(name: string): Promise<Tensor> {
    if (!this.index.has(name)) throw new InputError(this.name, `has no tensor named "${name}"`);
    const m = this.sent.get(name) ?? (await this.readWeight(name));
    this.sent.delete(name);
    delete this.params.tensors[name];
    return fromTensorMessage(m, `${this.name}: ${name}`);
  }

  readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    const t = await this.take(name);
    return precision === 'float64' ? toFloat64(t) : toFloat32(t);
  }

  readNative(name: string): Promise<Tensor> {
    return this.take(name);
  }
}
