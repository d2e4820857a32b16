/// <reference types="@webgpu/types" />
/**
 * How the native forward turns WGSL into pipelines and dispatches, without tfjs.
 *
 * A kernel declares its storage bindings and uniforms by name; `kernelSource` writes the
 * declarations and an entry point around its body, so a body reads like tfjs-backend-webgpu's
 * user code: storage arrays by name, `uniforms.*`, and either
 *  - 'flat': `fn main(index : i32)` once per invocation (the scan generator of
 *    ./scanShaders.ts is written so), or
 *  - 'workgroup': `fn main(group : vec3<u32>, local : u32)` with workgroup-shared memory.
 * Pipelines are cached by their WGSL, so layers of one shape share them.
 */

export type ScalarType = 'i32' | 'f32';

export interface StorageBinding {
  readonly name: string;
  /** Element type: 'vec4<f32>' binds a float buffer four at a time (the scan's B and C). */
  readonly type: 'f32' | 'i32' | 'u32' | 'vec4<f32>';
  readonly write?: boolean;
}

export interface KernelSpec {
  readonly storage: readonly StorageBinding[];
  readonly uniforms: readonly (readonly [name: string, type: ScalarType])[];
  /** Invocations per workgroup. */
  readonly workgroupSize: number;
  readonly entry: 'flat' | 'workgroup';
  readonly body: string;
}

export function kernelSource(spec: KernelSpec): string {
  const decls = spec.storage.map(
    (b, i) => `@group(0) @binding(${i}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name} : array<${b.type}>;`,
  );
  if (spec.uniforms.length) {
    decls.push(`struct Uniforms { ${spec.uniforms.map(([n, t]) => `${n} : ${t},`).join(' ')} }`);
    decls.push(`@group(0) @binding(${spec.storage.length}) var<uniform> uniforms : Uniforms;`);
  }
  const W = spec.workgroupSize;
  // A flat dispatch wider than the device's per-dimension limit is folded into 2-D (flatWorkgroups).
  const call = spec.entry === 'flat' ? `main(i32((wid.y * nwg.x + wid.x) * ${W}u + lid));` : 'main(wid, lid);';
  return `${decls.join('\n')}
${spec.body}
@compute @workgroup_size(${W})
fn entry(@builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
  ${call}
}`;
}

/**
 * Invocations per workgroup for a kernel that cooperates through workgroup memory: `n` on a GPU,
 * 1 on a CPU implementation (SwiftShader), where a workgroup's invocations are threads of the
 * same few cores and one invocation per workgroup needs no barrier at all. (The crashes first
 * blamed on SwiftShader's barriers were the Dawn instance being collected: src/node/webgpu.ts.)
 */
export function cooperativeThreads(software: boolean, n: number): number {
  return software ? 1 : n;
}

/**
 * WGSL unrolled by the generator: f(0) … f(n − 1), one per line. Loops over registers are written
 * out so that no driver leaves them as arrays in memory, and SwiftShader (which does not unroll)
 * gets straight-line code.
 */
export function unrolled(n: number, f: (i: number) => string, separator = '\n      '): string {
  return Array.from({ length: n }, (_, i) => f(i)).join(separator);
}

/** workgroupBarrier() where a workgroup has more than one invocation. */
export function barrier(threads: number): string {
  return threads > 1 ? 'workgroupBarrier();' : '';
}

/** One recorded step of a forward: everything is created at plan time, recording only replays. */
export interface Dispatch {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  /** x, y and (a split-K matmul's splits) z. */
  readonly workgroups: readonly [number, number] | readonly [number, number, number];
}

/** A buffer range bound to a storage binding (a whole buffer, or one plane of it). */
export interface BufferRange {
  readonly buffer: GPUBuffer;
  /** Bytes; a multiple of the device's minStorageBufferOffsetAlignment (planes.ts keeps 256). */
  readonly offset?: number;
  readonly size?: number;
}

/** Compiled pipelines by WGSL text: one per model, so plans for other lengths compile nothing new. */
export type PipelineCache = Map<string, GPUComputePipeline>;

/** Pipelines by WGSL text, and the dispatches built from them. */
export class KernelCache {
  /** Uniform buffers the dispatches own (one per dispatch, written once). */
  readonly uniformBuffers: GPUBuffer[] = [];

  constructor(readonly device: GPUDevice, private readonly pipelines: PipelineCache = new Map()) {}

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  pipeline(spec: KernelSpec): GPUComputePipeline {
    const code = kernelSource(spec);
    let p = this.pipelines.get(code);
    if (!p) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'entry' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  /**
   * A dispatch of `spec` over `workgroups`, with its storage bound by name and its uniforms
   * written once into a buffer of its own.
   */
  dispatch(label: string, spec: KernelSpec, workgroups: Dispatch['workgroups'], storage: Readonly<Record<string, BufferRange>>, uniforms: Readonly<Record<string, number>> = {}): Dispatch {
    const pipeline = this.pipeline(spec);
    const entries: GPUBindGroupEntry[] = spec.storage.map((b, i) => {
      const r = storage[b.name];
      if (!r) throw new Error(`${label}: storage binding ${b.name} is not bound`);
      return { binding: i, resource: { buffer: r.buffer, offset: r.offset ?? 0, size: r.size } };
    });
    if (spec.uniforms.length) {
      const data = new ArrayBuffer(Math.ceil((4 * spec.uniforms.length) / 16) * 16);
      const ints = new Int32Array(data), floats = new Float32Array(data);
      spec.uniforms.forEach(([name, type], i) => {
        const v = uniforms[name];
        if (v === undefined) throw new Error(`${label}: uniform ${name} has no value`);
        if (type === 'i32') ints[i] = v;
        else floats[i] = v;
      });
      const buffer = this.device.createBuffer({ label: `${label} uniforms`, size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
      this.device.queue.writeBuffer(buffer, 0, data);
      this.uniformBuffers.push(buffer);
      entries.push({ binding: spec.storage.length, resource: { buffer } });
    }
    const bindGroup = this.device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
    return { label, pipeline, bindGroup, workgroups };
  }

  /** Workgroups for `threads` flat invocations: at most maxComputeWorkgroupsPerDimension wide. */
  flatWorkgroups(threads: number, workgroupSize: number): [number, number] {
    const groups = Math.max(1, Math.ceil(threads / workgroupSize));
    const x = Math.min(groups, this.device.limits.maxComputeWorkgroupsPerDimension);
    return [x, Math.ceil(groups / x)];
  }
}

export function record(pass: GPUComputePassEncoder, dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2] ?? 1);
  }
}
