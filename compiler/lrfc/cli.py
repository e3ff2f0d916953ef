"""The `lrfc` command line. Thin: parse, resolve, call the library, print.

Heavy imports (TensorFlow, Keras, tf2onnx, tensorly) happen inside command
bodies, so `lrfc --help` and `lrfc profiles ...` start fast. A ``UserError``
becomes one line on stderr and exit status 2; ``--verbose`` adds the
traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Annotated, Optional

import typer

from lrfc.errors import UserError

app = typer.Typer(
    name="lrfc",
    help="Edge-deployment compiler for CNNs: hybrid low-rank factorization, verified TFLite/ONNX artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
profiles_app = typer.Typer(help="Target hardware profiles.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")

_state = {"verbose": False}


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and progress detail.")] = False):
    _state["verbose"] = verbose


def _emit_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _parse_shape(text: Optional[str]) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise UserError(f"--input-shape: received {text!r}; expected comma-separated positive integers like 224,224,3") from None
    if not shape or min(shape) <= 0:
        raise UserError(f"--input-shape: received {text!r}; expected comma-separated positive integers like 224,224,3")
    return shape


# --------------------------------------------------------------------- inspect


@app.command()
def inspect(
    model: Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    input_shape: Annotated[Optional[str], typer.Option(help="Input shape without batch, e.g. 224,224,3, for models whose spatial size is undefined.")] = None,
    trust_model: Annotated[bool, typer.Option("--trust-model", help="Allow layers whose loading runs code stored in the file (Lambda).")] = False,
):
    """List every layer: type, output shape, params, MACs and the factorizations that apply."""
    from lrfc.frontend.inspect import inspect_model, render_table

    report = inspect_model(model, trust=trust_model, input_shape=_parse_shape(input_shape))
    if as_json:
        _emit_json(report)
    else:
        typer.echo(render_table(report))


# ---------------------------------------------------------------------- build


@app.command()
def build(
    model: Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory.")],
    data: Annotated[str, typer.Option(help="fashion-mnist, digits, an .npz (x, y) or a folder of images in class subfolders.")],
    target: Annotated[str, typer.Option(help="A profile name (lrfc profiles list), 'jetson', or a .toml path.")] = "host",
    objective: Annotated[Optional[str], typer.Option(help="latency, flops, params or memory (default: the target's).")] = None,
    threshold: Annotated[float, typer.Option(help="Feature-map cosine similarity each factorized layer must reach.")] = 0.92,
    max_acc_drop: Annotated[float, typer.Option(help="Largest accepted top-1 drop, in points, before recovery rounds.")] = 1.0,
    methods: Annotated[str, typer.Option(help="Comma list of methods to try.")] = "tucker,cp,tt,svd,qr,ttm",
    step: Annotated[float, typer.Option(help="Rank grid step, in percent of the layer's cost.")] = 2.0,
    max_sol: Annotated[int, typer.Option(help="Whole-model solutions kept in the report.")] = 5,
    calib_samples: Annotated[int, typer.Option(help="Calibration samples for feature maps and statistics.")] = 1000,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = 10,
    finetune: Annotated[str, typer.Option(help="oneshot, iterative (the paper's baseline) or none.")] = "oneshot",
    rank_selection: Annotated[str, typer.Option(help="similarity (the paper's), vbmf or energy (weight-based baselines).")] = "similarity",
    energy: Annotated[float, typer.Option(help="Singular-value energy kept by --rank-selection energy.")] = 0.9,
    data_aware: Annotated[str, typer.Option(help="auto (keep the better fit per rank), on or off.")] = "auto",
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="Distil from the original model's logits while fine-tuning (off: it did not measurably help here).")] = False,
    train_samples: Annotated[Optional[int], typer.Option(help="Use at most this many training samples for fine-tuning.")] = None,
    max_rounds: Annotated[int, typer.Option(help="Fine-tuning rounds at most (recovery included).")] = 4,
    batch_size: Annotated[int, typer.Option(help="Fine-tuning batch size.")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of splits, factorizations and training.")] = 0,
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")] = "lrfc-out",
    plan: Annotated[Optional[str], typer.Option(help="A plan.json to rebuild without searching.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the on-disk cache.")] = False,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache directory (default: $LRFC_CACHE_DIR or ~/.cache/lrfc).")] = None,
    trust_model: Annotated[bool, typer.Option("--trust-model", help="Allow layers whose loading runs code stored in the file (Lambda).")] = False,
    formats: Annotated[Optional[str], typer.Option(help="Comma list of tflite, onnx (default: the target's runtimes).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Where to measure latency: ssh://user@host[:port], or 'local' (default: this machine for --target host, else estimated).")] = None,
    device_python: Annotated[str, typer.Option(help="Python on the --device that runs runtime_bench.")] = "python3",
    identity_file: Annotated[Optional[str], typer.Option(help="ssh private key for --device.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="Extra ssh -o option for --device (repeatable).")] = None,
    cost_db: Annotated[Optional[str], typer.Option(help="Cost database of measured latencies (default: $LRFC_COST_DB, else costs.sqlite in the cache directory).")] = None,
    bench_runs: Annotated[int, typer.Option(help="Timed runs per artifact in the final original-vs-compressed benchmark (0: skip).")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json instead of the summary table.")] = False,
):
    """Compress a model: hybrid factorization, one-shot fine-tuning, verified TFLite/ONNX, benchmark, report."""
    from lrfc.options import BuildOptions

    options = BuildOptions(
        model=model, data=data, target=target, objective=objective, threshold=threshold, max_acc_drop=max_acc_drop,
        methods=tuple(m.strip() for m in methods.split(",") if m.strip()), step=step, max_sol=max_sol,
        calib_samples=calib_samples, epochs=epochs, finetune=finetune, rank_selection=rank_selection, energy=energy,
        seed=seed, out=out, cache=not no_cache, cache_dir=cache_dir, plan=plan, train_samples=train_samples,
        max_rounds=max_rounds, distill=distill, data_aware=data_aware, batch_size=batch_size, trust_model=trust_model,
        formats=tuple(f.strip() for f in formats.split(",") if f.strip()) if formats is not None else None,
        device=device, device_python=device_python, identity_file=identity_file, ssh_options=tuple(ssh_option or ()),
        cost_db=cost_db, bench_runs=bench_runs,
    ).validate()
    from lrfc.pipeline import run_build
    from lrfc.report.text import summary_table

    state = run_build(options)
    if as_json:
        _emit_json(state.report)
    else:
        typer.echo(summary_table(state.report))
        typer.echo(f"wrote {', '.join(str(p) for p in state.outputs.values())}")


# ------------------------------------------------------------------ decompose


@app.command()
def decompose(
    model: Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory.")],
    method: Annotated[str, typer.Option("--method", "-m", help="tucker, cp, tt (convolutions); svd, qr, ttm (dense, 1x1 convolutions).")],
    out: Annotated[str, typer.Option("--out", "-o", help="The .keras file to write.")],
    rank: Annotated[str, typer.Option(help="'full', one integer for every rank, or a comma list (e.g. 8,16 for Tucker).")] = "full",
    layers: Annotated[Optional[str], typer.Option(help="Comma-separated layer names; default: every layer the method applies to.")] = None,
    data: Annotated[Optional[str], typer.Option(help="fashion-mnist, digits, an .npz (x, y) or an image folder: reports output similarity.")] = None,
    data_aware: Annotated[bool, typer.Option("--data-aware", help="Fit factors to each layer's output on --data instead of to its weights.")] = False,
    calib_samples: Annotated[int, typer.Option(help="Calibration samples drawn from --data.")] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-layer report as JSON.")] = False,
    trust_model: Annotated[bool, typer.Option("--trust-model", help="Allow layers whose loading runs code stored in the file (Lambda).")] = False,
):
    """Factorize layers with one method at ranks you choose (no search, no fine-tuning)."""
    from lrfc.factorize.manual import decompose_model

    if calib_samples < 1:
        raise UserError(f"--calib-samples: received {calib_samples}; expected a positive integer")
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    report = decompose_model(model, method, rank, names, data, data_aware, out, calib_samples, trust=trust_model)
    if as_json:
        _emit_json(report)
        return
    for entry in report["layers"]:
        sim = f"  similarity {entry['similarity']:.4f}" if "similarity" in entry else ""
        typer.echo(f"{entry['name']}: {entry['method']} ranks {entry['ranks']}  params {entry['params_before']:,} -> "
                   f"{entry['params_after']:,}  MACs {entry['macs_before']:,} -> {entry['macs_after']:,}{sim}")
    typer.echo(f"total params {report['total_params_before']:,} -> {report['total_params_after']:,}; "
               f"MACs {report['total_macs_before']:,} -> {report['total_macs_after']:,}; wrote {report['out']}")


# --------------------------------------------------------------------- export


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory.")],
    target: Annotated[str, typer.Option(help="A profile name (lrfc profiles list), 'jetson', or a .toml path.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")],
    formats: Annotated[Optional[str], typer.Option(help="Comma list of tflite, onnx (default: the target's runtimes).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: the target's).")] = None,
    data: Annotated[Optional[str], typer.Option(help="fashion-mnist, digits, an .npz (x, y) or an image folder: calibration and verification samples; required for int8.")] = None,
    calib_samples: Annotated[int, typer.Option(help="Calibration samples drawn from --data (at most 256).")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the sample draws.")] = 0,
    trust_model: Annotated[bool, typer.Option("--trust-model", help="Allow layers whose loading runs code stored in the file (Lambda).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print export.json instead of the table.")] = False,
):
    """Lower a model as it is (no compression) to verified TFLite/ONNX artifacts and export.json."""
    from lrfc.lower.artifacts import export_model, render_table

    fmts = tuple(f for f in formats.split(",")) if formats is not None else None
    doc = export_model(model, target, out, formats=fmts, precision=precision, data=data,
                       calib_samples=calib_samples, trust=trust_model, seed=seed)
    if as_json:
        _emit_json(doc)
    else:
        typer.echo(render_table(doc))
        typer.echo(f"wrote {', '.join(a['path'] for a in doc['artifacts'])}, {out}/export.json")


# ---------------------------------------------------------------------- bench


@app.command()
def bench(
    artifacts: Annotated[list[str], typer.Argument(help=".tflite or .onnx files, all for one runtime.")],
    runtime: Annotated[Optional[str], typer.Option(help="litert, onnxruntime-cpu, onnxruntime-cuda or onnxruntime-tensorrt (default: from the file suffix).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the runtime's).")] = None,
    runs: Annotated[int, typer.Option(help="Timed inferences per file.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed inferences per file first.")] = 5,
    rounds: Annotated[int, typer.Option(help="Passes over the files, in alternating order.")] = 5,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 1,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Load all files in one worker; no peak-memory figures.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: Annotated[Optional[str], typer.Option(help="Run on ssh://user@host[:port] instead of here.")] = None,
    device_python: Annotated[str, typer.Option(help="The device's Python (needs numpy and the runtime).")] = "python3",
    identity_file: Annotated[Optional[str], typer.Option(help="Private key for ssh -i.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="An ssh -o option, e.g. StrictHostKeyChecking=accept-new (repeatable).")] = None,
):
    """Time exported models and measure their peak memory, here or on an ssh device (numpy + runtime only)."""
    import os

    for path in artifacts:
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such file; expected a .tflite or .onnx file")
    from runtime_bench.measure import format_table
    from runtime_bench.remote import run_bench

    kwargs = dict(runtime=runtime, threads=threads, runs=runs, warmup=warmup, rounds=rounds, batch=batch,
                  memory=not no_memory)
    if device not in (None, "local"):
        kwargs.update(python=device_python, identity=identity_file, ssh_options=tuple(ssh_option or ()))
    elif identity_file or ssh_option or device_python != "python3":
        raise UserError("--device-python, --identity-file and --ssh-option apply to --device ssh://...; "
                        "received them without a device")
    try:
        report = run_bench(artifacts, device=device, **kwargs)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    except RuntimeError as exc:  # a worker or ssh failed: the message names the file or the device
        raise UserError(f"benchmark failed: {exc}") from None
    if as_json:
        _emit_json(report)
    else:
        typer.echo(format_table(report))


# -------------------------------------------------------------------- profiles


@profiles_app.command("list")
def profiles_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False):
    """List the built-in target profiles."""
    from lrfc.targets import list_profiles, profile_to_dict

    profiles = list_profiles()
    if as_json:
        _emit_json([profile_to_dict(p) for p in profiles])
        return
    width = max(len(p.name) for p in profiles)
    for p in profiles:
        typer.echo(f"{p.name:<{width}}  {p.precision:<5} {','.join(p.runtimes):<62} {p.description}")


@profiles_app.command("show")
def profiles_show(
    name: Annotated[str, typer.Argument(help="A profile name (see `lrfc profiles list`), 'jetson', or a path to a .toml file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
):
    """Show one target profile."""
    from lrfc.targets import load_profile, profile_to_dict

    data = profile_to_dict(load_profile(name))
    if as_json:
        _emit_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    0: success. 2: a ``UserError`` (bad input), printed as one line
    ``lrfc: error: ...``. 1: a ``VerificationError`` (an exported artifact
    failed the gate against its Keras model), printed the same way with the
    numbers. 130: interrupted. Any other exception is a bug and propagates
    with its traceback.
    """
    from lrfc.errors import VerificationError

    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        print(f"lrfc: error: {exc}", file=sys.stderr)
        return 2
    except VerificationError as exc:
        if _state["verbose"]:
            traceback.print_exc()
        print(f"lrfc: error: {exc}", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("lrfc: aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # usage errors (typer's bundled click exceptions) print themselves
        from typer.exceptions import TyperException

        if isinstance(exc, TyperException) and hasattr(exc, "show"):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
