#!/usr/bin/env python3
"""Checks tools/dump_mamba.py --intervene against mamba-scope's float64 reference.

For mamba1-tiny and mamba2-tiny (test/fixtures) and each intervention below, the float64
reference's dump of the intervened run (`mamba-scope inspect --intervene`, written beforehand on
a machine with Node: `--print-commands` prints the commands) is compared with dump_mamba's dump of
the same specs on the same ids: every tensor both hold (logits, each layer's hidden states,
internals and states), as the normalized error max|a - b| / max|b|, the worst one reported. It
also checks that the metadata "interventions" is the same, and reports how far the intervention
moved the logits (ref: the reference's clean vs intervened; ours: dump_mamba's), so an
intervention applied to neither side cannot pass unseen. "patch-state, torch source" patches
from dump_mamba's own dump of the source run (its h and conv_state) instead of mamba-scope's, and
is compared with the same reference dump.

Needs torch, safetensors and transformers. Usage:
  python tools/test_dump_interventions.py --print-commands > make_refs.sh   # then run it where Node is
  python tools/test_dump_interventions.py [--refs scratch_interventions] [--devices cpu,cuda]
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = ("mamba1-tiny", "mamba2-tiny")
IDS = [(i * 53 + 7) % 1000 for i in range(24)]
SOURCE_IDS = [(i * 31 + 11) % 1000 for i in range(20)]  # patch-state's source: another run, another length
STATES = "5,12"


def cases(model, refs):
    """(name, specs) for one model; paths relative to the repository root, as both tools read them."""
    vector = f"test/fixtures/{model}/model.safetensors:backbone.layers.0.norm.weight"
    return [
        ("clean", []),
        ("ablate-write", ["ablate-write layer=1 tokens=10"]),
        ("scale-delta", ["scale-delta layer=0 tokens=3:6 factor=2.5 channels=0,2"]),
        ("zero-state", ["zero-state layer=1 token=9"]),
        ("knockout", ["knockout layer=1 from=4 to=10"]),
        ("steer", [f"steer layer=1 tokens=2,3 vector={vector} scale=0.5"]),
        ("patch-state", [f"patch-state layer=1 token=9 from={refs}/{model}/source.safetensors"]),
        ("combined", ["ablate-write layer=0 tokens=5,6", "knockout layer=1 from=2 to=8", "zero-state layer=1 token=15"]),
    ]


def print_commands(refs):
    ids = ",".join(map(str, IDS))
    for model in MODELS:
        base = f"node dist/cli.js inspect --model test/fixtures/{model}"
        print(f"mkdir -p {refs}/{model}")
        print(f"{base} --ids {','.join(map(str, SOURCE_IDS))} --states-at 9 --out {refs}/{model}/source.safetensors")
        for name, specs in cases(model, refs):
            intervene = "".join(f" --intervene '{s}'" for s in specs)
            print(f"{base} --ids {ids} --states-at {STATES} --out {refs}/{model}/{name}.safetensors{intervene}")


def rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / (b.abs().max() or 1.0)).item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--refs", default="scratch_interventions", help="the reference dumps, relative to the repository root")
    p.add_argument("--devices", default=None)
    p.add_argument("--tolerance", type=float, default=1e-5)
    p.add_argument("--out-dir", default=os.environ.get("OUT") or tempfile.mkdtemp())
    p.add_argument("--print-commands", action="store_true")
    args = p.parse_args()
    if args.print_commands:
        return print_commands(args.refs)

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from dump_mamba import dump_model

    os.chdir(ROOT)  # the specs' paths are relative to the repository root
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    devices = (args.devices or ("cpu,cuda" if torch.cuda.is_available() else "cpu")).split(",")
    failed = False
    for device in devices:
        for model_name in MODELS:
            model = AutoModelForCausalLM.from_pretrained(f"test/fixtures/{model_name}", dtype=torch.float32).to(device).eval()
            clean_ref = None
            clean_ours = None
            # dump_mamba's own dump of patch-state's source run: a patch source written in PyTorch.
            source = os.path.join(args.out_dir, f"{model_name}.source.{device}.safetensors")
            dump_model(model, SOURCE_IDS, source, states_at=[9])
            torch_source = ("patch-state, torch source", [f"patch-state layer=1 token=9 from={source}"], "patch-state")
            for name, specs, ref_name in [(n, sp, n) for n, sp in cases(model_name, args.refs)] + [torch_source]:
                with safe_open(f"{args.refs}/{model_name}/{ref_name}.safetensors", framework="pt") as f:
                    ref = {k: f.get_tensor(k) for k in f.keys()}
                    ref_meta = f.metadata() or {}
                out = os.path.join(args.out_dir, f"{model_name}.{name.replace(', ', '-').replace(' ', '-')}.{device}.safetensors")
                try:
                    ours, meta = dump_model(model, ref["input_ids"].tolist(), out, states_at=[int(s) for s in STATES.split(",")], interventions=specs)
                except Exception as err:  # one broken case should not hide the others'
                    failed = True
                    print(f"{model_name:12s} {device:4s} {name:25s} ERROR {type(err).__name__}: {err}")
                    continue
                compared = [k for k in ref if k in ours and k != "input_ids" and not k.endswith("h_tokens")]
                missing = sorted(k for k in ref if k not in ours)
                errors = {k: rel_err(ours[k], ref[k]) for k in compared}
                worst = max(errors, key=errors.get)
                # The torch-source case names another file than the reference's: its spec is checked by the plain patch-state case.
                same_meta = ref_name != name or json.loads(meta.get("interventions", "[]")) == json.loads(ref_meta.get("interventions", "[]"))
                if name == "clean":
                    clean_ref, clean_ours = ref["logits"], ours["logits"]
                moved = f"moved ref {rel_err(ref['logits'], clean_ref):.1e} ours {rel_err(ours['logits'], clean_ours):.1e}"
                ok = errors[worst] <= args.tolerance and same_meta and not missing
                failed |= not ok
                notes = ("" if same_meta else " METADATA DIFFERS") + (f" missing {missing}" if missing else "")
                print(f"{model_name:12s} {device:4s} {name:25s} {'PASS' if ok else 'FAIL'} worst {errors[worst]:.1e} ({worst}) logits {errors['logits']:.1e}, {len(compared)} tensors, {moved}{notes}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
