/**
 * Named tensors already in memory, seen as a TensorStore: weights the host sent to the webview,
 * random-weight models in benchmarks, tensors built by tests.
 */
import { InputError } from '../errors';
import { toFloat32, toFloat64, type Tensor } from '../tensor';
import { dtypeOfArray } from './dtypes';
import type { TensorStore } from './safetensors';

export class MemoryTensorStore implements TensorStore {
  constructor(
    readonly name: string,
    private readonly tensors: ReadonlyMap<string, Tensor>,
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string) {
    const t = this.tensors.get(name);
    return t && { dtype: dtypeOfArray(t.data), shape: t.shape };
  }

  private require(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new InputError(this.name, `has no tensor named "${name}"`);
    return t;
  }

  readFloat(name: string, precision: 'float32'): Promise<Tensor<Float32Array>>;
  readFloat(name: string, precision: 'float64'): Promise<Tensor<Float64Array>>;
  readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>>;
  async readFloat(name: string, precision: 'float32' | 'float64'): Promise<Tensor<Float32Array | Float64Array>> {
    const t = this.require(name);
    return precision === 'float64' ? toFloat64(t) : toFloat32(t);
  }

  async readNative(name: string): Promise<Tensor> {
    return this.require(name);
  }
}
