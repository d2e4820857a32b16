#!/usr/bin/env python3
"""Checks tools/dump_mamba.py against transformers' own outputs on the family fixtures.

Each test/fixtures/families/<family>/ holds a small random-weight model (config.json,
model.safetensors) and dump.safetensors: what transformers itself computed for its input_ids
(hf_logits, hidden_states.k, and module outputs layers.i.<module path>). For every family this
dumps the model with dump_mamba.dump_model and prints one line: the normalized error
max|a - b| / max|b| of each quantity against the fixture (the worst layer), and PASS when all
are within --tolerance.

  logits      logits vs hf_logits
  hidden      layers.k-1.hidden_out vs hidden_states.k (hidden_last: the last layer, which
              transformers may report after the final norm; then compared after that norm)
  ssm_out, attn_out, mlp_out   vs the fixture's mamba / self_attn / feed_forward module outputs
  out         pure Mamba: vs the mixer's output
  residual    hybrid: hidden_out vs hidden_in + m·out (+ m·mlp_out), m the residual multiplier
  z           z vs the gate segment of the fixture's in_proj output
  y_to_out    out_proj(gate(y, z)) from the dump's y and z vs its mixer output (checks u, Δ, B, C, y)
  moe         routed experts that differ from the fixture's router (a count), and weights' error
  pattern     attention rows: |sum - 1| and weight above the diagonal (both should be ~0)

Needs torch, safetensors and transformers. Usage:
  python tools/test_dump_families.py [--devices cpu,cuda] [--out-dir DIR] [--families jamba,...]
"""
import argparse
import json
import os
import sys
import tempfile

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dump_mamba import HYBRID_FAMILIES, dump_model, find_decoder_layers, find_layers, layer_parts  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "families")
# Quantities reported as counts or as deviations from an exact property, not as errors against a reference.
NOT_ERRORS = {"moe_mismatch"}


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / (b.abs().max() or 1.0)).item()


def first(ref, names):
    return next((ref[n] for n in names if n in ref), None)


def final_norm(model):
    base = getattr(model, "model", None) or getattr(model, "backbone", model)
    return next(getattr(base, n) for n in ("norm", "final_layernorm", "norm_f") if hasattr(base, n))


@torch.no_grad()
def gated_out(mixer, y, z, device):
    """The mixer's output rebuilt from the dump's y and z with its own gate/norm and out_proj: this
    checks u, Δ, B, C and the scan (y), which the fixtures do not hold."""
    y, z = y.to(device)[None], z.to(device)[None]
    norm = getattr(mixer, "norm", None)
    if isinstance(norm, torch.nn.Module) and not isinstance(norm, torch.nn.Identity) and mixer.A_log.dim() == 1:
        gated = norm(y, z)  # Mamba-2's gated RMSNorm
    else:
        gated = y * torch.nn.functional.silu(z)
    return mixer.out_proj(gated)[0].cpu()


def check(folder, device, out_path):
    from transformers import AutoModelForCausalLM

    family = json.load(open(os.path.join(folder, "config.json")))["model_type"]
    hybrid = family in HYBRID_FAMILIES
    options = {"attn_implementation": "eager"} if hybrid else {}
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **options).to(device).eval()
    ref = load_file(os.path.join(folder, "dump.safetensors"))
    tensors, meta = dump_model(model, ref["input_ids"].tolist(), out_path, states_at=[0, -1], attention_pattern=hybrid)
    errors = {}

    def record(name, value):
        errors[name] = max(errors.get(name, 0.0), value)

    record("logits", rel_err(tensors["logits"], ref["hf_logits"]))
    n = sum(1 for k in tensors if k.endswith(".hidden_out"))
    # Hybrid fixtures start with the embeddings (hidden_states.k is layer k-1's output), pure Mamba
    # ones do not (hidden_states.k is layer k's); both end with hidden_states.n, checked below.
    shift = 1 if hybrid else 0
    for k in range(shift, n - 1 + shift):
        record("hidden", rel_err(tensors[f"layers.{k - shift}.hidden_out"], ref[f"hidden_states.{k}"]))
    last = tensors[f"layers.{n - 1}.hidden_out"]
    with torch.no_grad():
        normed = final_norm(model)(last.to(device)[None])[0].cpu()
    record("hidden_last", min(rel_err(last, ref[f"hidden_states.{n}"]), rel_err(normed, ref[f"hidden_states.{n}"])))
    residual_multiplier = getattr(model.config, "residual_multiplier", 1.0)
    mixers = [layer_parts(layer)[0] for layer in find_decoder_layers(model)] if hybrid else [layer.mixer for layer in find_layers(model)]
    for i in range(n):
        p = f"layers.{i}."
        mine = {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}
        candidates = {
            "ssm_out": ["mamba", "mamba_decoder.mamba.out_proj", "mixer"],
            "attn_out": ["self_attn", "self_attn.o_proj", "shared_transformer.self_attn.o_proj", "mixer"],
            "mlp_out": ["feed_forward", "shared_transformer", "mixer"],
        }
        if not hybrid:
            candidates = {"out": ["mixer"]}
        for name, paths in candidates.items():
            expected = first(ref, [p + q for q in paths])
            if p + "block_sparse_moe" in ref and name == "mlp_out":  # Granite: MoE + shared MLP
                expected = ref[p + "block_sparse_moe"] + ref[p + "shared_mlp"]
            if name in mine and expected is not None:
                record(name, rel_err(mine[name], expected))
        if hybrid:
            # Nemotron-H layers have one branch; Zamba2's shared block feeds the Mamba input instead.
            single = family in ("nemotron_h", "zamba2") or "mlp_out" not in mine
            rebuilt = mine["hidden_in"] + residual_multiplier * mine["out"]
            if not single:
                rebuilt = rebuilt + residual_multiplier * mine["mlp_out"]
            record("residual", rel_err(rebuilt, mine["hidden_out"]))
        if "y" in mine:
            record("y_to_out", rel_err(gated_out(mixers[i], mine["y"], mine["z"], device), mine["ssm_out" if hybrid else "out"]))
        in_proj = first(ref, [p + q for q in ("mamba.in_proj", "mamba_decoder.mamba.in_proj", "mixer.in_proj")])
        if "z" in mine and in_proj is not None:
            D = mine["z"].shape[1]
            mamba1 = mine["delta"].shape[1] == D  # Mamba-1's in_proj is (x, z); Mamba-2's starts with z
            record("z", rel_err(mine["z"], in_proj[:, D:] if mamba1 else in_proj[:, :D]))
        if "moe_experts" in mine:
            router = first(ref, [p + "feed_forward.router", p + "block_sparse_moe.router"])
            k = mine["moe_experts"].shape[1]
            if router is not None and router.shape[1] == k:  # Granite's fixture holds the top-k indices
                record("moe_mismatch", (mine["moe_experts"] != router).sum().item())
            elif router is not None:  # Jamba's holds the router logits: top-k of their softmax
                weights, index = torch.softmax(router.double(), -1).topk(k, dim=-1)
                record("moe_mismatch", (mine["moe_experts"] != index).sum().item())
                record("moe_weights", rel_err(mine["moe_weights"], weights))
        if "attn_pattern" in mine:
            pattern = mine["attn_pattern"].double()  # [L, heads, L]
            record("pattern_rowsum", (pattern.sum(-1) - 1).abs().max().item())
            L = pattern.shape[0]
            above = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)[:, None, :].expand_as(pattern)
            record("pattern_future", pattern[above].abs().max().item())
    return family, errors, meta


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out-dir", default=os.environ.get("OUT") or tempfile.mkdtemp())
    p.add_argument("--families", help="comma-separated fixture folders (default: all)")
    p.add_argument("--tolerance", type=float, default=1e-5)
    args = p.parse_args()
    # Plain float32 everywhere, like the fixtures (TF32 would cost ~1e-3).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    names = args.families.split(",") if args.families else sorted(os.listdir(FIXTURES))
    failed = False
    for device in args.devices.split(","):
        for name in names:
            out_path = os.path.join(args.out_dir, f"{name}.{device}.safetensors")
            try:
                family, errors, meta = check(os.path.join(FIXTURES, name), device, out_path)
            except Exception as err:  # one broken family should not hide the others' results
                failed = True
                print(f"{name:17s} {device:4s} ERROR {type(err).__name__}: {err}")
                continue
            ok = all(v <= args.tolerance for k, v in errors.items() if k not in NOT_ERRORS) and errors.get("moe_mismatch", 0) == 0
            failed |= not ok
            summary = " ".join(f"{k}={v:.1e}" if k not in NOT_ERRORS else f"{k}={v:g}" for k, v in errors.items())
            extra = f" recomputed={meta['recomputed']}" + (f" not_captured={meta['not_captured']}" if "not_captured" in meta else "")
            print(f"{name:17s} {device:4s} {'PASS' if ok else 'FAIL'} model={meta['model']} {summary}{extra}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
