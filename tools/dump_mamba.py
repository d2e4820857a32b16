#!/usr/bin/env python3
"""Write a mamba-dump/1 file from a PyTorch Mamba model, for Mamba Scope.

Attaches forward hooks to a transformers MambaForCausalLM / Mamba2ForCausalLM / FalconMamba (or a
bare MambaModel / Mamba2Model), a transformers hybrid (see below), or a mamba_ssm MambaLMHeadModel,
runs one forward pass and writes what the model computed, in the layout the extension and `mamba-scope compare` / `rescan` read:

  input_ids [L] int32 · logits [L, V]
  layers.i.hidden_in [L, H]   residual stream entering layer i
  layers.i.z [L, D]           gate branch of in_proj (before SiLU)
  layers.i.u [L, D]           scan input: x after the causal conv and SiLU
  layers.i.delta [L, D]       Δ after dt_proj + softplus (Mamba-2: [L, heads], with dt_bias and clamp)
  layers.i.B, layers.i.C      [L, N] (Mamba-2: [L, groups·N])
  layers.i.y [L, D]           scan output including D·u, before the gate
  layers.i.h [T, D, N]        state after token t for t in layers.i.h_tokens [T] (Mamba-2: [T, heads, P, N])
  layers.i.conv_state [T, K-1, C]  the conv's context after those tokens: the K - 1 inputs of the
                              conv ending there (C = D; Mamba-2: x | B | C), what patch-state reads
  layers.i.out [L, H]         mixer output (out_proj) · layers.i.hidden_out [L, H] residual after the layer
  metadata: format "mamba-dump/1", layout "LD", model "mamba1"|"mamba2", dtype (the model's),
            tokens (JSON list of token strings), source, recomputed (see below)

Hybrid transformers models (model_type jamba, bamba, granitemoehybrid, nemotron_h, zamba2,
falcon_h1) write, per decoder layer i, hidden_in / hidden_out as above and:
  layers.i.out [L, H]         the first residual branch as the layer adds it, before a residual
                              multiplier (Granite); Falcon-H1: its parallel Mamba and attention
                              outputs after their multipliers, summed
  layers.i.ssm_out [L, H]     the Mamba mixer's output, with the Mamba internals above (z ... h)
  layers.i.attn_out [L, H]    the attention's output (o_proj) · layers.i.attn_pattern [L, heads, L]
                              its softmax weights, query token first (--attention: eager attention)
  layers.i.mlp_out [L, H]     the feed-forward branch (MLP or MoE; Granite: MoE + shared MLP)
  layers.i.moe_experts, layers.i.moe_weights [L, k]   routed experts, most weight first, and their
                              weights (both float32)
  metadata model and arch: the model_type; not_captured: per layer, what could not be captured.
Zamba2's shared transformer block belongs to the hybrid layer that runs it: its attention and MLP
outputs are that layer's attn_out / mlp_out, and its output joins that layer's Mamba input.

Tensors are stored as float32 (a bf16/fp16 model's values are exact in float32); the metadata
"dtype" tells `mamba-scope compare` which tolerance applies.

What is captured and what is recomputed. Hooks catch the model's own numbers wherever a module is
called: block input/output, mixer input/output, in_proj, x_proj's input (u) and output (Δ's
low-rank part, B, C; Jamba and FalconMamba: the RMSNorms applied to them), the first SiLU (the
conv output), dt_proj, Mamba-2's gated norm input (y). Fused CUDA paths (mamba_ssm kernels), and
models that apply a weight directly (Jamba's and FalconMamba's dt_proj) skip some modules; those
quantities are then recomputed from the captured upstream values in float64 with the layer's
weights. The states h are never reachable by hooks: they are always recomputed in
float64 from the dump's own u, Δ, B, C with A = −exp(A_log) (and so is Mamba-1's y, which exists
only inside the scan). Every captured value is checked against its float64 recomputation (a
hook on the wrong call would disagree completely); metadata "recomputed" lists what was
recomputed, so a reader knows which numbers are the model's.

Needs torch and safetensors; transformers (or mamba_ssm) only to load a model from a folder, and
the tokenizers package only to tokenize --text.

Usage:
  python tools/dump_mamba.py --model <hf-folder> --text sample.py --out dump.safetensors
         [--states 0,57,-1] [--dtype float32|bfloat16|float16] [--device cuda|cpu]
         [--ids 1,2,3 | --ids-from other-dump.safetensors] [--mamba-ssm] [--allow-tf32] [--attention]
         [--intervene "ablate-write layer=1 tokens=40" ...]

  --states    token positions whose states h are written (negative counts from the end; default -1)
  --dtype     load the model in this dtype (default float32)
  --ids-from  reuse the exact input_ids (and token strings) of another dump, to compare runs
  --mamba-ssm load the folder with mamba_ssm's MambaLMHeadModel instead of transformers
  --allow-tf32  keep TF32 matmuls/convolutions on (default off, so a float32 dump is float32)
  --attention hybrid models: load eager attention and also write attn_pattern
  --intervene an intervention of docs/INTERVENTIONS.md, as mamba-scope inspect --intervene takes it
              (repeatable; pure Mamba models): ablate-write, scale-delta, zero-state, knockout,
              steer, patch-state (from a dump with conv_state: this tool's or mamba-scope's). A layer with an edit of
              its scan runs recomputed in float64 from its input with the edit (the model's kernels
              cannot be told to drop a write); steering adds to the stream entering the layer. The
              dump is of the intervened run, its metadata "interventions" as mamba-scope writes it,
              so `mamba-scope compare` compares it with `inspect --intervene` of the same specs.

From Python (any model object of the kinds above, already loaded):
  from dump_mamba import dump_model
  dump_model(model, input_ids, "dump.safetensors", states_at=[0, -1], tokens=None)
  (attention_pattern=True for attn_pattern, on a hybrid model loaded with attn_implementation="eager")

tools/test_dump_families.py checks the dumps against transformers' outputs in test/fixtures/families.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "mamba-dump/1"
# A captured tensor farther than this (max|Δ| / max|ref|) from its float64 recomputation came from
# the wrong call; bf16 models stay around 1e-2.
AGREEMENT = 0.1


def find_layers(model):
    for path in ("backbone.layers", "layers", "model.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if all(hasattr(layer, "mixer") for layer in obj):
            return list(obj)
    raise ValueError("no Mamba layers found (expected .backbone.layers[i].mixer or .layers[i].mixer)")


class Capture:
    """The first value each hook saw during the forward pass of one layer."""

    def __init__(self):
        self.values = {}

    def keep(self, key, value):
        if key not in self.values and isinstance(value, torch.Tensor):
            self.values[key] = value.detach().clone()

    def get(self, key):
        return self.values.get(key)


def _hidden_arg(args, kwargs):
    return args[0] if args else kwargs.get("hidden_states")


def hook_mixer(mixer, keep, hook_act=True):
    """Hooks one Mamba mixer's sub-modules; `keep(key, value)` receives what they compute."""
    handles = [
        mixer.register_forward_pre_hook(lambda _m, a, k: keep("mixer_in", _hidden_arg(a, k)), with_kwargs=True),
        mixer.register_forward_hook(lambda _m, _a, out: keep("out", out[0] if isinstance(out, tuple) else out)),
    ]
    # Jamba and FalconMamba normalize Δ's low-rank part, B and C between x_proj and the scan.
    for name in ("in_proj", "x_proj", "dt_proj", "dt_layernorm", "b_layernorm", "c_layernorm"):
        module = getattr(mixer, name, None)
        if isinstance(module, torch.nn.Module):
            handles.append(module.register_forward_hook(lambda _m, _a, out, name=name: keep(name, out)))
    if isinstance(getattr(mixer, "x_proj", None), torch.nn.Module):
        # x_proj's input is u itself (Mamba-1), also when the conv runs in a fused kernel.
        handles.append(mixer.x_proj.register_forward_pre_hook(lambda _m, a, k: keep("x_proj_in", _hidden_arg(a, k)), with_kwargs=True))
    act = getattr(mixer, "act", None)
    if isinstance(act, torch.nn.Module) and hook_act:
        handles.append(act.register_forward_hook(lambda _m, _a, out: keep("act", out)))
    norm = getattr(mixer, "norm", None)
    if isinstance(norm, torch.nn.Module) and mixer.A_log.dim() == 1:
        handles.append(norm.register_forward_pre_hook(lambda _m, a, k: keep("norm_in", _hidden_arg(a, k)), with_kwargs=True))
    return handles


def attach(model):
    """Registers the hooks; returns (per-layer captures, hook handles)."""
    layers = find_layers(model)
    captures = [Capture() for _ in layers]
    handles = []
    act_ids = [id(getattr(layer.mixer, "act", None)) for layer in layers]
    shared_act = len(set(act_ids)) != len(act_ids)
    for cap, layer in zip(captures, layers):

        def block_pre(_m, args, kwargs, cap=cap):
            hs = _hidden_arg(args, kwargs)
            residual = args[1] if len(args) > 1 else kwargs.get("residual")
            # mamba_ssm blocks take (mixer output so far, residual) and add them before the norm.
            cap.keep("hidden_in", hs + residual if isinstance(residual, torch.Tensor) else hs)

        def block_post(_m, _args, _kwargs, output, cap=cap):
            if isinstance(output, tuple):  # mamba_ssm: (mixer output, residual)
                cap.keep("hidden_out", output[1] + output[0])
            else:
                cap.keep("hidden_out", output)

        handles.append(layer.register_forward_pre_hook(block_pre, with_kwargs=True))
        handles.append(layer.register_forward_hook(block_post, with_kwargs=True))
        # A shared activation module fires in every layer: its first value would be layer 0's.
        handles += hook_mixer(layer.mixer, cap.keep, hook_act=not shared_act)
    return captures, handles


# --- float64 recomputation ----------------------------------------------------------------------


def _f64(t):
    return t.detach().to("cpu", torch.float64)


def _oriented(t, length, width):
    """[1, L, W] or [1, W, L] (transformers keeps Mamba-1 channel-first) -> [L, W] in its own dtype, or None."""
    if t is None:
        return None
    if t.dim() == 3:
        t = t[0]
    if t.dim() != 2:
        return None
    if tuple(t.shape) == (length, width):
        return t
    if tuple(t.shape) == (width, length):
        return t.transpose(0, 1)
    return None


def _ld(t, length, width):
    t = _oriented(t, length, width)
    return None if t is None else _f64(t)


def _pick(name, captured, recomputed, recomputed_names):
    """The model's own value when it agrees with the float64 recomputation, else the recomputation."""
    if captured is not None and captured.shape == recomputed.shape:
        finite = torch.isfinite(captured)
        if not finite.all():
            return captured  # non-finite values are the model's own: never replace them
        scale = recomputed.abs().max().item() or 1.0
        if (captured - recomputed).abs().max().item() / scale <= AGREEMENT:
            return captured
    recomputed_names.append(name)
    return recomputed


def _linear(x, module):
    y = x @ _f64(module.weight).T
    return y + _f64(module.bias) if module.bias is not None else y


def _rms_norm(x, norm):
    """Jamba's RMSNorm (weight, variance_epsilon) or FalconMamba's weightless one (eps; its weight buffer is unused)."""
    if hasattr(norm, "variance_epsilon"):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * _f64(norm.weight)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)


def _causal_conv_silu(x, conv, patch=None):
    """Depthwise causal conv1d over [L, C] with left zero padding, then SiLU. patch-state: the
    positions after patch.token read patch.conv [K - 1, C] (the inputs ending at that token, from
    another run) in place of their own."""
    weight = _f64(conv.weight)[:, 0, :]  # [C, K]
    K = weight.shape[1]

    def conv_of(rows, n):  # the n outputs of a [K - 1 + n, C] input window, no padding
        return sum(weight[:, k : k + 1] * rows.T[:, k : k + n] for k in range(K)).T

    out = conv_of(torch.cat([x.new_zeros(K - 1, x.shape[1]), x]), x.shape[0])
    if patch is not None and patch.token + 1 < x.shape[0]:
        t = patch.token
        out[t + 1 :] = conv_of(torch.cat([patch.conv, x[t + 1 :]]), x.shape[0] - t - 1)
    if conv.bias is not None:
        out = out + _f64(conv.bias)
    return F.silu(out)


def conv_windows(x, K, at, patch=None):
    """The conv's context after each token in `at` (sorted): [T, K - 1, C], the K - 1 pre-conv
    inputs ending at the token, oldest first, as the next position reads them (zeros before the
    start; a patch-state's rows where positions after its token read them): patch-state's source."""
    padded = torch.cat([x.new_zeros(K - 1, x.shape[1]), x])  # row r is position r - (K - 1)
    windows = []
    for t in sorted(at):
        rows = padded[t + 1 : t + K].clone()  # positions t - K + 2 ... t
        if patch is not None and t >= patch.token:
            for r, src in enumerate(range(t - K + 2, t + 1)):
                if patch.token - K + 1 < src <= patch.token:
                    rows[r] = patch.conv[src - patch.token + K - 2]
        windows.append(rows)
    return torch.stack(windows)


def _scan_step(t, h, decay, write, edit, own):
    """One token of the scan with the layer's edits: the state after token t, and the knocked-out
    token's own term in it (`own`, None without a knockout). docs/INTERVENTIONS.md."""
    if edit is None:
        return decay * h + write, own
    if t in edit.no_write:
        write = torch.zeros_like(write)
    if t in edit.reset:
        h = torch.zeros_like(h)
    elif edit.patch is not None and t == edit.patch.token:
        h = edit.patch.h.clone()
    else:
        h = decay * h + write
    if edit.knockout is not None and t >= edit.knockout[0]:
        replaced = t in edit.reset or (edit.patch is not None and t == edit.patch.token)
        own = torch.zeros_like(h) if replaced else write if t == edit.knockout[0] else decay * own
    return h, own


def _knocked_out(t, edit):
    return edit is not None and edit.knockout is not None and t >= edit.knockout[1]


def scan_mamba1(u, delta, A, B, C, D, at, edit=None):
    """h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t, y_t = h_t·C_t + D u_t; states after the tokens in `at`.
    `edit`: the layer's interventions (LayerEdit), applied as mamba-scope's float64 reference does."""
    L, channels = u.shape
    h = torch.zeros(channels, A.shape[1], dtype=torch.float64)
    own = None
    y = torch.empty(L, channels, dtype=torch.float64)
    states = {}
    for t in range(L):
        h, own = _scan_step(t, h, torch.exp(delta[t, :, None] * A), (delta[t] * u[t])[:, None] * B[t][None, :], edit, own)
        y[t] = h @ C[t] + D * u[t]
        if _knocked_out(t, edit):
            y[t] -= own @ C[t]
        if t in at:
            states[t] = h.clone()
    return y, torch.stack([states[t] for t in sorted(at)]) if at else None


def scan_mamba2(u, delta, A, B, C, D, groups, at, edit=None):
    """Per head k: scalar A_k, Δ_{t,k}; head k reads B/C group k // (heads / groups). `edit` as scan_mamba1's."""
    L = u.shape[0]
    heads = A.shape[0]
    P = u.shape[1] // heads
    N = B.shape[1] // groups
    x = u.view(L, heads, P)
    Dh = D.view(heads, -1)  # [heads, 1] or [heads, P] (D per channel)
    h = torch.zeros(heads, P, N, dtype=torch.float64)
    own = None
    y = torch.empty(L, heads, P, dtype=torch.float64)
    states = {}
    for t in range(L):
        Bt = B[t].view(groups, N).repeat_interleave(heads // groups, dim=0)
        Ct = C[t].view(groups, N).repeat_interleave(heads // groups, dim=0)
        write = (delta[t][:, None] * x[t])[:, :, None] * Bt[:, None, :]
        h, own = _scan_step(t, h, torch.exp(delta[t] * A)[:, None, None], write, edit, own)
        y[t] = (h * Ct[:, None, :]).sum(-1) + Dh * x[t]
        if _knocked_out(t, edit):
            y[t] -= (own * Ct[:, None, :]).sum(-1)
        if t in at:
            states[t] = h.clone()
    return y.view(L, -1), torch.stack([states[t] for t in sorted(at)]) if at else None


def layer_internals(mixer, cap, length, at, edit=None):
    """The Mamba internals of one layer (float64), the mixer kind and the names of those recomputed.
    `edit`: the layer's interventions; its mixer then ran edited_forward, so nothing below it was
    captured and all is recomputed, with the edits."""
    patch = edit.patch if edit is not None else None
    recomputed = []
    xn = _f64(cap.get("mixer_in")[0])
    # Falcon-H1 scales in_proj's input by ssm_in_multiplier and its output by the µP vector
    # (z, x, B, C, Δ segments); the scan sees the scaled projection, so the dump does too.
    proj_rec = _linear(xn * getattr(mixer, "ssm_in_multiplier", 1.0), mixer.in_proj)
    native_proj = _oriented(cap.get("in_proj"), length, proj_rec.shape[1])
    mup = getattr(mixer, "mup_vector", None)
    if mup is not None:
        proj_rec = proj_rec * _f64(mup).reshape(-1)
        native_proj = None if native_proj is None else native_proj * mup.reshape(-1)
    proj = _pick("in_proj", None if native_proj is None else _f64(native_proj), proj_rec, recomputed)
    A = -torch.exp(_f64(mixer.A_log))
    D = _f64(mixer.D)
    if mixer.A_log.dim() == 2:
        channels, N = mixer.A_log.shape
        R = mixer.dt_proj.weight.shape[1]
        x, z = proj[:, :channels], proj[:, channels:]
        u_captured = _ld(cap.get("x_proj_in"), length, channels)
        u = _pick("u", u_captured if u_captured is not None else _ld(cap.get("act"), length, channels), _causal_conv_silu(x, mixer.conv1d, patch), recomputed)
        xdbl = _pick("x_proj", _ld(cap.get("x_proj"), length, R + 2 * N), _linear(u, mixer.x_proj), recomputed)
        dt_low, B, C = xdbl[:, :R], xdbl[:, R : R + N], xdbl[:, R + N :]
        if isinstance(getattr(mixer, "dt_layernorm", None), torch.nn.Module):
            # Jamba and FalconMamba: RMSNorms on Δ's low-rank part, B and C. (Jamba then applies
            # dt_proj's weight directly, with no dt_proj call to hook, so its Δ is recomputed.)
            dt_low = _pick("dt_layernorm", _ld(cap.get("dt_layernorm"), length, R), _rms_norm(dt_low, mixer.dt_layernorm), recomputed)
            B = _pick("b_layernorm", _ld(cap.get("b_layernorm"), length, N), _rms_norm(B, mixer.b_layernorm), recomputed)
            C = _pick("c_layernorm", _ld(cap.get("c_layernorm"), length, N), _rms_norm(C, mixer.c_layernorm), recomputed)
        dt_rec = _linear(dt_low, mixer.dt_proj)
        dt_cap = cap.get("dt_proj")
        dt = _pick("dt_proj", _ld(dt_cap, length, channels), dt_rec, recomputed)
        # softplus in the model's own dtype when its dt_proj output was captured, as the model does.
        delta = _ld(F.softplus(dt_cap), length, channels) if "dt_proj" not in recomputed else F.softplus(dt)
        delta = scaled_delta(delta, edit)
        y, h = scan_mamba1(u, delta, A, B, C, D, at, edit)
        recomputed.append("y")
        model = "mamba1"
        pre_conv = x
    else:
        heads = A.shape[0]
        d_inner = mixer.out_proj.weight.shape[1]
        conv_dim = mixer.conv1d.weight.shape[0]
        gn = (conv_dim - d_inner) // 2
        groups = getattr(mixer, "n_groups", getattr(mixer, "ngroups", 1))
        d_mlp = (proj.shape[1] - d_inner - conv_dim - heads) // 2
        z = proj[:, 2 * d_mlp : 2 * d_mlp + d_inner]
        xbc_raw = proj[:, 2 * d_mlp + d_inner : 2 * d_mlp + d_inner + conv_dim]
        dt_raw = proj[:, 2 * d_mlp + d_inner + conv_dim :]
        xbc = _pick("u", _ld(cap.get("act"), length, conv_dim), _causal_conv_silu(xbc_raw, mixer.conv1d, patch), recomputed)
        u, B, C = xbc[:, :d_inner], xbc[:, d_inner : d_inner + gn], xbc[:, d_inner + gn :]
        lo, hi = getattr(mixer, "time_step_limit", getattr(mixer, "dt_limit", (0.0, math.inf)))
        if "in_proj" in recomputed:
            delta = torch.clamp(F.softplus(dt_raw + _f64(mixer.dt_bias)), lo, hi)
        else:
            # Δ in the model's own dtype, as the model computes it from its captured in_proj output.
            native = native_proj[:, -heads:]
            delta = _f64(torch.clamp(F.softplus(native + mixer.dt_bias.to(native.dtype)), lo, hi))
        delta = scaled_delta(delta, edit)
        y_rec, h = scan_mamba2(u, delta, A, B, C, D, groups, at, edit)
        y = _pick("y", _ld(cap.get("norm_in"), length, d_inner), y_rec, recomputed)
        model = "mamba2"
        pre_conv = xbc_raw
    tensors = {"z": z, "u": u, "delta": delta, "B": B, "C": C, "y": y}
    if h is not None:
        tensors["h"] = h
        tensors["conv_state"] = conv_windows(pre_conv, mixer.conv1d.weight.shape[2], at, patch)
    # Name the dump quantities that were recomputed, not the projections they come from.
    dump_names = {"in_proj": "z", "x_proj": "B, C", "dt_proj": "delta", "dt_layernorm": "delta", "b_layernorm": "B", "c_layernorm": "C"}
    names = {dump_names.get(r, r) for r in recomputed}
    if h is not None:
        names.add("h")
    return model, tensors, sorted(names)


# --- interventions (docs/INTERVENTIONS.md; the same specs as `mamba-scope inspect --intervene`) --

INTERVENTION_KEYS = {
    "ablate-write": ("layer", "tokens"),
    "scale-delta": ("layer", "tokens", "factor", "channels"),
    "zero-state": ("layer", "token"),
    "knockout": ("layer", "from", "to"),
    "steer": ("layer", "tokens", "vector", "scale"),
    "patch-state": ("layer", "token", "from"),
}


class InterventionError(ValueError):
    """Bad --intervene input: one line naming the intervention (or file) and the problem."""


def _positions(source, text):
    """"3,7,10:20" -> [3, 7, 10 ... 19] (end exclusive; negative positions stay negative)."""
    out = []
    for item in text.split(","):
        parts = item.split(":")
        try:
            values = [int(v) for v in parts]
        except ValueError:
            raise InterventionError(f"{source}: \"{item}\" is not a position or a start:end range") from None
        if len(values) == 1:
            out.append(values[0])
        elif len(values) == 2 and values[1] > values[0]:
            out.extend(range(values[0], values[1]))
        else:
            raise InterventionError(f"{source}: \"{item}\" is not a position or a non-empty start:end range")
    return out


def parse_intervention(text):
    """One spec ("ablate-write layer=1 tokens=40") as a dict: kind, then its fields parsed."""
    source = f'intervention "{text}"'
    kind, *pairs = text.split()
    if kind not in INTERVENTION_KEYS:
        raise InterventionError(f"{source}: \"{kind}\" is not an intervention of this tool ({', '.join(INTERVENTION_KEYS)}; ablate-path: mamba-scope inspect)")
    fields = dict(p.split("=", 1) for p in pairs if "=" in p)
    if len(fields) != len(pairs) or set(fields) - set(INTERVENTION_KEYS[kind]):
        raise InterventionError(f"{source}: {kind} takes {', '.join(INTERVENTION_KEYS[kind])} as key=value")
    i = {"kind": kind}
    try:
        i["layer"] = int(fields["layer"])
        if "tokens" in INTERVENTION_KEYS[kind]:
            i["tokens"] = _positions(source, fields["tokens"])
        if kind in ("zero-state", "patch-state"):
            i["token"] = int(fields["token"])
        if kind == "scale-delta":
            i["factor"] = float(fields["factor"])
            if "channels" in fields:
                i["channels"] = _positions(source, fields["channels"])
        if kind == "knockout":
            i["from"], i["to"] = int(fields["from"]), int(fields["to"])
        if kind == "steer":
            file, _, key = fields["vector"].rpartition(":")
            if not file or not key:
                raise InterventionError(f"{source}: needs vector=FILE:KEY (a tensor of d_model values in a safetensors file)")
            i["vector"], i["scale"] = (file, key), float(fields.get("scale", 1))
        if kind == "patch-state":
            i["from"] = fields["from"]
    except KeyError as missing:
        raise InterventionError(f"{source}: needs {missing.args[0]}=…") from None
    except ValueError as err:
        if isinstance(err, InterventionError):
            raise
        raise InterventionError(f"{source}: {err}") from None
    return i


def _number(v):
    """A number as JavaScript's String() writes it, for the metadata mamba-scope writes."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _list(values):
    return ",".join(str(v) for v in values)


def describe_intervention(i):
    """The line mamba-scope's describeIntervention writes into a dump's metadata."""
    k, layer = i["kind"], i["layer"]
    if k == "ablate-write":
        return f"ablate-write layer={layer} tokens={_list(i['tokens'])}"
    if k == "scale-delta":
        channels = f" channels={_list(i['channels'])}" if "channels" in i else ""
        return f"scale-delta layer={layer} tokens={_list(i['tokens'])} factor={_number(i['factor'])}{channels}"
    if k == "zero-state":
        return f"zero-state layer={layer} token={i['token']}"
    if k == "knockout":
        return f"knockout layer={layer} from={i['from']} to={i['to']}"
    if k == "steer":
        return f"steer layer={layer} tokens={_list(i['tokens'])} vector={i['vector'][0]}:{i['vector'][1]} scale={_number(i['scale'])}"
    return f"patch-state layer={layer} token={i['token']} from={i['from']}"


class StatePatch:
    def __init__(self, token, h, conv):
        self.token, self.h, self.conv = token, h, conv


class LayerEdit:
    """What one layer is told to change, positions resolved (mamba-scope's interventions.ts LayerEdit)."""

    def __init__(self):
        self.no_write, self.reset = set(), set()
        self.knockout = None  # (source token, first output position)
        self.patch = None
        self.delta_scale = []  # (tokens, factor, columns or None)
        self.steer = []  # (tokens, vector [H] float64, scale)


def _state_patch(source, i, token, mixer):
    """patch-state's state and conv context after `token` in layer i["layer"] of the dump i["from"]
    (written by mamba-scope inspect --states-at: h and conv_state at h_tokens)."""
    layer, path = i["layer"], i["from"]
    redo = f"write it with mamba-scope inspect --states-at {token}"
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        if f"layers.{layer}.h_tokens" not in names:
            raise InterventionError(f"{path}: has no states of layer {layer} (layers.{layer}.h_tokens): {redo}")
        tokens = f.get_tensor(f"layers.{layer}.h_tokens").tolist()
        if token not in tokens:
            raise InterventionError(f"{path}: holds layer {layer}'s state after tokens {', '.join(map(str, tokens))}, not after token {token}: {redo}")
        if f"layers.{layer}.conv_state" not in names:
            raise InterventionError(f"{path}: has no layers.{layer}.conv_state (the conv context patch-state also replaces): {redo}")
        row = tokens.index(token)
        h, conv = (f.get_tensor(f"layers.{layer}.{n}")[row].to(torch.float64) for n in ("h", "conv_state"))
    A, conv_dim, d_inner = mixer.A_log, mixer.conv1d.weight.shape[0], mixer.out_proj.weight.shape[1]
    groups = getattr(mixer, "n_groups", getattr(mixer, "ngroups", 1))
    state = tuple(A.shape) if A.dim() == 2 else (A.shape[0], d_inner // A.shape[0], (conv_dim - d_inner) // (2 * groups))
    context = (mixer.conv1d.weight.shape[2] - 1, conv_dim)
    if tuple(h.shape) != state or tuple(conv.shape) != context:
        raise InterventionError(f"{path}: layer {layer}'s h {list(h.shape)} and conv_state {list(conv.shape)} per token; this model's are {list(state)} and {list(context)}: a dump of another model shape")
    return StatePatch(token, h, conv)


def layer_edits(interventions, length, mixers):
    """The edits each layer gets, checked against the model (`mixers`: its Mamba mixers) and the
    sample; steer vectors and patch states read from their files."""
    edits = {}
    for i in interventions:
        source = f'intervention "{describe_intervention(i)}"'
        layer = i["layer"]
        if not 0 <= layer < len(mixers):
            raise InterventionError(f"{source}: layer {layer} is outside the model's {len(mixers)} layers")

        def at(t):
            q = t + length if t < 0 else t
            if not 0 <= q < length:
                raise InterventionError(f"{source}: token {t} is outside the {length}-token sample")
            return q

        e = edits.setdefault(layer, LayerEdit())
        k = i["kind"]
        if k == "ablate-write":
            e.no_write.update(at(t) for t in i["tokens"])
        elif k == "zero-state":
            e.reset.add(at(i["token"]))
        elif k == "scale-delta":
            width = mixers[layer].A_log.shape[0]  # Δ's columns: Mamba-1's channels, Mamba-2's heads
            bad = [c for c in i.get("channels", []) if not 0 <= c < width]
            if bad:
                raise InterventionError(f"{source}: channel {bad[0]} is outside Δ's {width} columns")
            e.delta_scale.append(({at(t) for t in i["tokens"]}, i["factor"], set(i["channels"]) if "channels" in i else None))
        elif k == "knockout":
            if e.knockout is not None:
                raise InterventionError(f"{source}: layer {layer} already has a knockout: one per layer")
            s, t0 = at(i["from"]), at(i["to"])
            if t0 < s:
                raise InterventionError(f"{source}: to={i['to']} comes before from={i['from']}: token s only reaches later positions")
            e.knockout = (s, t0)
        elif k == "steer":
            file, key = i["vector"]
            with safe_open(file, framework="pt") as f:
                if key not in f.keys():
                    raise InterventionError(f"{file}: has no tensor \"{key}\"")
                vector = f.get_tensor(key).reshape(-1).to(torch.float64)
            width = mixers[layer].in_proj.weight.shape[1]
            if vector.numel() != width:
                raise InterventionError(f"{source}: the vector {key} has {vector.numel()} values; the stream has d_model {width}")
            e.steer.append(({at(t) for t in i["tokens"]}, vector, i["scale"]))
        else:
            if e.patch is not None:
                raise InterventionError(f"{source}: layer {layer} already has a patch-state: one per layer")
            e.patch = _state_patch(source, i, at(i["token"]), mixers[layer])
    for layer, e in edits.items():
        if e.patch is not None and e.patch.token in e.reset:
            raise InterventionError(f"layer {layer}: has both a zero-state and a patch-state at token {e.patch.token}: choose one")
    return edits


def scaled_delta(delta, edit):
    """Δ [L, columns] with the edit's scalings (scale-delta), a copy; Δ itself without any."""
    if edit is None or not edit.delta_scale:
        return delta
    delta = delta.clone()
    for tokens, factor, columns in edit.delta_scale:
        cols = sorted(columns) if columns is not None else slice(None)
        for t in tokens:
            delta[t, cols] *= factor
    return delta


def mixer_output(mixer, t):
    """The mixer's output (out_proj) from its float64 internals: Mamba-1 y ⊙ silu(z); Mamba-2
    through its gated RMSNorm, as transformers computes it (over all of d_inner)."""
    gated = t["y"] * F.silu(t["z"])
    if mixer.A_log.dim() == 1:
        eps = getattr(mixer.norm, "variance_epsilon", getattr(mixer.norm, "eps", None))
        gated = gated * torch.rsqrt(gated.pow(2).mean(-1, keepdim=True) + eps) * _f64(mixer.norm.weight)
    return _linear(gated, mixer.out_proj)


def edited_forward(mixer, edit):
    """A forward for a mixer with interventions: the layer recomputed in float64 from its input with
    the edits (layer_internals), its output returned in the model's dtype. The model's own kernels
    cannot be told to drop a write or replace a state."""

    def forward(hidden_states, *_args, **_kwargs):
        cap = Capture()
        cap.keep("mixer_in", hidden_states)
        _kind, internals, _names = layer_internals(mixer, cap, hidden_states.shape[1], set(), edit)
        return mixer_output(mixer, internals).to(hidden_states.device, hidden_states.dtype)[None]

    return forward


def apply_edits(layers, edits):
    """Installs the edits (steering on the stream entering a layer, the rest in its mixer); returns
    an undo function."""
    handles, edited = [], []
    for index, e in edits.items():
        layer = layers[index]
        if e.steer:

            def steer(_m, args, kwargs, e=e):
                hs = _hidden_arg(args, kwargs)
                hs = hs.clone()
                for tokens, vector, scale in e.steer:
                    for t in tokens:
                        hs[0, t] += (scale * vector).to(hs.device, hs.dtype)
                return ((hs,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hs})

            # Before the dump's own hooks, so hidden_in is the steered stream, as mamba-scope records it.
            handles.append(layer.register_forward_pre_hook(steer, with_kwargs=True, prepend=True))
        if e.no_write or e.reset or e.knockout or e.patch or e.delta_scale:
            layer.mixer.forward = edited_forward(layer.mixer, e)
            edited.append(layer.mixer)

    def undo():
        for h in handles:
            h.remove()
        for mixer in edited:
            del mixer.forward

    return undo


# --- hybrid families (transformers) -------------------------------------------------------------

HYBRID_FAMILIES = ("jamba", "bamba", "granitemoehybrid", "nemotron_h", "zamba2", "falcon_h1")


def hybrid_family(model):
    """The model_type of a transformers hybrid model, else None."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type if model_type in HYBRID_FAMILIES else None


def find_decoder_layers(model):
    for path in ("model.layers", "layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return list(obj)
    raise ValueError("no decoder layers found (expected .model.layers or .layers)")


def layer_parts(layer):
    """A hybrid decoder layer's modules by role: (Mamba mixer or None, attention or None, feed-forward modules).

    Zamba2's hybrid layer runs the shared transformer block (attention, then MLP), and its output
    joins the input of the layer's own Mamba decoder (mamba_decoder.mamba). Nemotron-H has a single
    `mixer` per layer, of whichever kind. Granite's feed-forward is block_sparse_moe + shared_mlp.
    """
    host = getattr(layer, "shared_transformer", None) or layer
    mamba = getattr(getattr(layer, "mamba_decoder", layer), "mamba", None)
    attention = getattr(host, "self_attn", None)
    ffn = [m for m in (getattr(host, name, None) for name in ("feed_forward", "block_sparse_moe", "shared_mlp")) if m is not None]
    mixer = getattr(layer, "mixer", None)
    if mixer is not None:
        if hasattr(mixer, "A_log"):
            mamba = mixer
        elif hasattr(mixer, "o_proj"):
            attention = mixer
        else:
            ffn = [mixer]
    return mamba, attention, ffn


def attach_hybrid(model):
    """Registers the hooks on a hybrid model; returns (per-layer captures, hook handles).

    Every module hook writes into the capture of the decoder layer running at that moment, so a
    module shared by several layers (Zamba2's shared transformer block) is hooked once and its
    values land in the layer that called it.
    """
    layers = find_decoder_layers(model)
    captures = [Capture() for _ in layers]
    current = [None]
    handles = []
    hooked = set()

    def keep(key, value):
        if current[0] is not None:
            current[0].keep(key, value)

    def hook_once(module, register):
        if id(module) not in hooked:
            hooked.add(id(module))
            handles.extend(register(module))

    def attention_post(_m, _args, output):
        # Attention modules return (o_proj output, softmax weights, None unless eager).
        keep("attn_out", output[0])
        keep("attn_weights", output[1])

    def topk_pre(_m, args, kwargs):
        # transformers' experts modules take (hidden_states, top_k_index, top_k_weights).
        keep("moe_index", args[1] if len(args) > 1 else kwargs.get("top_k_index"))
        keep("moe_weights", args[2] if len(args) > 2 else kwargs.get("top_k_weights"))

    for cap, layer in zip(captures, layers):

        def enter(_m, args, kwargs, cap=cap):
            current[0] = cap
            cap.keep("hidden_in", _hidden_arg(args, kwargs))

        def leave(_m, _args, _kwargs, output, cap=cap):
            cap.keep("hidden_out", output[0] if isinstance(output, tuple) else output)
            current[0] = None

        handles.append(layer.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(layer.register_forward_hook(leave, with_kwargs=True))
        mamba, attention, ffn = layer_parts(layer)
        if mamba is not None:
            hook_once(mamba, lambda m: hook_mixer(m, keep))
        if attention is not None:
            hook_once(attention, lambda m: [m.register_forward_hook(attention_post)])
        for j, module in enumerate(ffn):
            hook_once(module, lambda m, j=j: [m.register_forward_hook(lambda _m, _a, out: keep(f"ffn.{j}", out))])
            experts = getattr(module, "experts", None)
            if isinstance(experts, torch.nn.Module):
                hook_once(experts, lambda m: [m.register_forward_pre_hook(topk_pre, with_kwargs=True)])
    return captures, handles


def hybrid_layer_tensors(layer, cap, length, at, attention_pattern):
    """One hybrid layer's dump tensors and the names of those recomputed / not captured."""
    mamba, attention, ffn = layer_parts(layer)
    H = cap.get("hidden_in").shape[-1]
    tensors = {"hidden_in": cap.get("hidden_in"), "hidden_out": cap.get("hidden_out")}
    recomputed, not_captured = [], []
    if mamba is not None:
        if cap.get("mixer_in") is None:
            raise RuntimeError("the Mamba mixer's hook never fired")
        _kind, internals, recomputed = layer_internals(mamba, cap, length, at)
        tensors.update(internals)
        tensors["ssm_out"] = cap.get("out")
    if attention is not None:
        tensors["attn_out"] = cap.get("attn_out")
        if attention_pattern:
            weights = cap.get("attn_weights")  # [1, heads, L, L]
            if weights is None:
                not_captured.append("attn_pattern")  # not eager attention: no weights returned
            else:
                tensors["attn_pattern"] = weights[0].transpose(0, 1)
    if ffn:
        parts = [cap.get(f"ffn.{j}") for j in range(len(ffn))]
        if any(p is None for p in parts):
            raise RuntimeError("a feed-forward hook never fired")
        tensors["mlp_out"] = sum(parts[1:], parts[0])
        if any(isinstance(getattr(m, "experts", None), torch.nn.Module) for m in ffn):
            index, weights = cap.get("moe_index"), cap.get("moe_weights")
            if index is None or weights is None:
                not_captured += ["moe_experts", "moe_weights"]
            else:
                # Most weight first, whatever order the router returned them in.
                weights, order = weights.float().sort(dim=-1, descending=True, stable=True)
                tensors["moe_experts"] = index.gather(-1, order)
                tensors["moe_weights"] = weights
    if mamba is not None and hasattr(layer, "attn_out_multiplier"):
        # Falcon-H1 runs Mamba and attention in parallel and adds both, after their multipliers.
        tensors["out"] = cap.get("out") * layer.ssm_out_multiplier + cap.get("attn_out") * layer.attn_out_multiplier
    else:
        # The first residual branch, before any residual multiplier (Granite) the layer applies; a
        # copy, as safetensors refuses two names for one storage.
        tensors["out"] = tensors.get("ssm_out", tensors.get("attn_out", tensors.get("mlp_out"))).clone()
    for name in ("hidden_in", "hidden_out", "ssm_out", "attn_out", "mlp_out", "out"):
        if name in tensors:
            tensors[name] = _oriented(tensors[name], length, H)
    return tensors, recomputed, not_captured


def _resolve(positions, length):
    out = set()
    for p in positions:
        q = p + length if p < 0 else p
        if not 0 <= q < length:
            raise ValueError(f"token position {p} is outside a {length}-token input")
        out.add(q)
    return out


@torch.no_grad()
def dump_model(model, input_ids, path, states_at=(-1,), tokens=None, extra_metadata=None, attention_pattern=False, interventions=()):
    """Runs `model` on `input_ids` (a list or 1-D tensor) and writes the dump to `path`.

    attention_pattern: also write attention layers' softmax weights (hybrid models loaded with
    attn_implementation="eager"; other attention implementations do not return them).
    interventions: specs as `mamba-scope inspect --intervene` takes them (pure Mamba models): the
    dump is of the intervened run, its metadata "interventions" as mamba-scope writes it.
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1)
    length = ids.shape[1]
    at = _resolve(states_at, length)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    family = hybrid_family(model)
    specs = [parse_intervention(i) if isinstance(i, str) else i for i in interventions]
    if specs and family:
        raise InterventionError(f"{family}: interventions run on pure Mamba models here; a hybrid's run in mamba-scope inspect --intervene")
    edits = layer_edits(specs, length, [layer.mixer for layer in find_layers(model)]) if specs else {}
    captures, handles = attach_hybrid(model) if family else attach(model)
    undo = apply_edits(find_layers(model), edits) if edits else lambda: None
    try:
        try:
            output = model(input_ids=ids.to(device), use_cache=False)
        except TypeError:  # mamba_ssm's MambaLMHeadModel takes the ids positionally, no use_cache
            output = model(ids.to(device))
    finally:
        for handle in handles:
            handle.remove()
        undo()
    logits = output.logits if hasattr(output, "logits") else output[0]
    tensors = {"input_ids": ids[0].to(torch.int32).cpu(), "logits": logits[0].float().cpu()}
    recomputed, not_captured = {}, {}
    model_kind = family
    layers = find_decoder_layers(model) if family else find_layers(model)
    for i, (layer, cap) in enumerate(zip(layers, captures)):
        if family:
            try:
                internals, names, missing = hybrid_layer_tensors(layer, cap, length, at, attention_pattern)
            except RuntimeError as err:
                raise RuntimeError(f"layer {i}: {err}") from None
            if missing:
                not_captured[str(i)] = missing
        else:
            if cap.get("mixer_in") is None:
                raise RuntimeError(f"layer {i}: the mixer hook never fired (is this a Mamba model?)")
            model_kind, internals, names = layer_internals(layer.mixer, cap, length, at, edits.get(i))
            H = cap.get("mixer_in").shape[-1]
            for name in ("hidden_in", "out", "hidden_out"):
                internals[name] = _ld(cap.get(name), length, H)
        for name, value in internals.items():
            if value is None:
                continue
            tensors[f"layers.{i}.{name}"] = value.float().cpu().contiguous()
        if "h" in internals:
            tensors[f"layers.{i}.h_tokens"] = torch.tensor(sorted(at), dtype=torch.int32)
        if names:
            recomputed[str(i)] = names
    metadata = {
        "format": FORMAT,
        "layout": "LD",
        "model": model_kind,
        "dtype": str(dtype).replace("torch.", ""),
        "tokens": json.dumps(tokens if tokens is not None else [str(int(t)) for t in ids[0]]),
        "source": f"tools/dump_mamba.py hooks on {type(model).__name__} (torch {torch.__version__}, {device})",
        "recomputed": json.dumps(recomputed),
        **({"interventions": json.dumps([describe_intervention(i) for i in specs], ensure_ascii=False, separators=(",", ":"))} if specs else {}),
        **(extra_metadata or {}),
    }
    if family:
        metadata.update({"arch": family, "not_captured": json.dumps(not_captured)})
    save_file(tensors, path, metadata=metadata)
    return tensors, metadata


# --- command line -------------------------------------------------------------------------------


def _load_model(folder, dtype, device, use_mamba_ssm, eager_attention=False):
    if use_mamba_ssm:
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        return MambaLMHeadModel.from_pretrained(folder, device=device, dtype=dtype).eval()
    from transformers import AutoModelForCausalLM

    # Only eager attention returns the softmax weights that --attention writes.
    options = {"attn_implementation": "eager"} if eager_attention else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **options)
    except TypeError:  # transformers < 4.56 calls it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype, **options)
    return model.to(device).eval()


def _tokenizer(folder):
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(path):
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    return Tokenizer.from_file(path)


def _input(args):
    """(ids, token strings or None)."""
    tok = _tokenizer(args.model)
    if args.ids_from:
        with safe_open(args.ids_from, framework="pt") as f:
            ids = f.get_tensor("input_ids").tolist()
            tokens = (f.metadata() or {}).get("tokens")
        return ids, json.loads(tokens) if tokens else (tok and [tok.id_to_token(i) for i in ids])
    if args.ids:
        ids = [int(s) for s in args.ids.split(",")]
        return ids, tok and [tok.id_to_token(i) for i in ids]
    if tok is None:
        sys.exit(f"{args.model} has no tokenizer.json (or the tokenizers package is missing): pass --ids or --ids-from")
    with open(args.text, encoding="utf-8") as f:
        encoding = tok.encode(f.read(), add_special_tokens=False)
    return encoding.ids, encoding.tokens


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a mamba-dump/1 file from a PyTorch Mamba model (see the module docstring).")
    p.add_argument("--model", required=True, help="model folder (transformers layout, or mamba_ssm with --mamba-ssm)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="UTF-8 text file to tokenize with the folder's tokenizer.json")
    source.add_argument("--ids", help="comma-separated token ids")
    source.add_argument("--ids-from", help="another dump whose input_ids (and tokens) to reuse")
    p.add_argument("--out", required=True)
    p.add_argument("--states", default="-1", help="token positions for h (comma-separated, negative from the end)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mamba-ssm", action="store_true")
    p.add_argument("--allow-tf32", action="store_true")
    p.add_argument("--attention", action="store_true", help="hybrid models: also write attn_pattern (loads eager attention)")
    p.add_argument("--intervene", action="append", default=[], help='an intervention, as mamba-scope inspect --intervene takes it (repeatable; pure Mamba models): "ablate-write layer=1 tokens=40"')
    args = p.parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    model = _load_model(args.model, getattr(torch, args.dtype), args.device, args.mamba_ssm, args.attention)
    ids, tokens = _input(args)
    states = [int(s) for s in args.states.split(",")] if args.states else []
    try:
        tensors, metadata = dump_model(model, ids, args.out, states, tokens, attention_pattern=args.attention, interventions=args.intervene)
    except InterventionError as err:
        sys.exit(f"dump_mamba: {err}")
    missing = f", not captured {metadata['not_captured']}" if "not_captured" in metadata else ""
    print(f"wrote {args.out}: {len(ids)} tokens, {len(tensors)} tensors, model {metadata['model']}, dtype {metadata['dtype']}, recomputed {metadata['recomputed']}{missing}")


if __name__ == "__main__":
    main()
