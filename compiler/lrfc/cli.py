"""The `lrfc` command line. Thin: parse, resolve, call the library, print.

Heavy imports (TensorFlow, Keras, tf2onnx, tensorly) happen inside command
bodies, so `lrfc --help` and `lrfc profiles ...` start fast. Exit statuses:
0 success; 2 a ``UserError`` (bad input), one line ``lrfc: error: ...``; 1 an
artifact that failed verification, one line with its numbers; 130 / 143
interrupted by SIGINT / SIGTERM, one line. ``--verbose`` adds tracebacks and
other libraries' warnings.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from lrfc.common.progress import stderr_line
from lrfc.decompose import names as method_names
from lrfc.errors import UserError
from lrfc.options import DEFAULT
from runtime_bench.runners import RUNNERS

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

# Options several commands share: one definition each.
ModelArg = Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory.")]
DataHelp = ("fashion-mnist, digits, an .npz (x, y: class indices, one-hot rows or class names; or Keras' x_train, "
            "y_train; an .h5 of such arrays), an .npy of samples alone, a .csv of image files and labels (a file-name "
            "column and a label or one-hot columns, as Kaggle's labels.csv), TFRecords of tf.train.Example (a file, or "
            "a folder of shards as TFDS prepares them: -train and -test shards are the two splits), or a folder of "
            "images in class subfolders (folder names 0..N-1 are the class indices; other names are sorted, or "
            "numbered by --class-names; images directly in it are labelled by file names such as cat.0.jpg where "
            "those name the model's classes).")
TrustModel = Annotated[bool, typer.Option("--trust-model", help="Allow layers whose loading runs code stored in the file (Lambda).")]
CustomObjects = Annotated[Optional[list[str]], typer.Option(
    "--custom-objects", help="A .py file (or module) that defines the model's custom layers or functions; imported "
                             "before the model loads, so Keras knows them by name. Repeat it for several.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
InputRange = Annotated[Optional[str], typer.Option(
    "--input-range", help="Pixel values the model expects: 0-1, 0-255 or -1-1 (default: inferred; a model that starts "
                          "with its own Rescaling/Normalization takes 0-255, others 0-1).")]
InputMean = Annotated[Optional[str], typer.Option(
    "--input-mean", help="Per-channel mean subtracted after --input-range, e.g. 0.485,0.456,0.406 (ImageNet, 0-1) "
                         "or 103.939,116.779,123.68 (Caffe, 0-255).")]
InputStd = Annotated[Optional[str], typer.Option(
    "--input-std", help="Per-channel std divided by after --input-mean, e.g. 0.229,0.224,0.225.")]
ChannelOrder = Annotated[Optional[str], typer.Option(
    "--channel-order", help="rgb (default) or bgr (Caffe-trained models such as keras.applications ResNet50).")]
ClassNames = Annotated[Optional[str], typer.Option(
    "--class-names", help="The model's classes in the order of its outputs, comma-separated (as Keras' class_names) "
                          "or a file of them (one per line; JSON: a list, or index -> name or \\[id, name] as Keras' "
                          "imagenet_class_index.json): they number the class folders and class-name labels "
                          "(default: sorted names).")]
Opset = Annotated[Optional[int], typer.Option(
    "--opset", help="The ONNX opset of the .onnx files, 13 to 18 (default: the target's onnx_opset, e.g. 13 for "
                    "jetson-nano, whose TensorRT 8.2 reads up to 13; else 17).")]
AllowLow = Annotated[bool, typer.Option(
    "--allow-low-accuracy", help="Go on (with a warning) when the original model scores at chance on the data.")]


def _print_version(asked: bool) -> None:
    if asked:
        from lrfc.provenance import version_text

        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks, other libraries' warnings and progress detail.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                help="Print lrfc's version and the packages it lowers and times with, "
                                                     "then exit.")] = False):
    from lrfc.common.quiet import set_verbose

    _state["verbose"] = verbose
    set_verbose(verbose)


def _emit_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2))


def _warn(message: str) -> None:
    stderr_line(message)


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


def _split(text: Optional[str]) -> tuple[str, ...] | None:
    return None if text is None else tuple(p.strip() for p in text.split(",") if p.strip())


def _class_names(text: Optional[str]) -> tuple[str, ...] | None:
    from lrfc.frontend.data import read_class_names

    return read_class_names(text)


def _devices(urls: Optional[list[str]]):
    """``--device``, given once (a URL) or repeated (a farm: a tuple)."""
    if not urls:
        return None
    return urls[0] if len(urls) == 1 else tuple(urls)


def _import_custom(specs: Optional[list[str]]) -> None:
    """``--custom-objects``, imported before a command loads its model (``lrfc build`` does it in its load stage)."""
    from lrfc.frontend.load import import_custom_objects

    import_custom_objects(specs)


def _contract(input_range, input_mean, input_std, channel_order):
    from lrfc.frontend.contract import given_contract

    return given_contract(input_range, input_mean, input_std, channel_order)


# --------------------------------------------------------------------- inspect


@app.command()
def inspect(
    model: Annotated[str, typer.Argument(help="A .keras, .h5/.hdf5 file or a SavedModel directory; or a .tflite/.onnx file.")],
    as_json: AsJson = False,
    input_shape: Annotated[Optional[str], typer.Option(help="Input shape without batch, e.g. 224,224,3, for models whose spatial size is undefined.")] = None,
    trust_model: TrustModel = False,
    custom_objects: CustomObjects = None,
):
    """A model: every layer (type, output shape, params, MACs, the factorizations that apply) and the input contract.
    A .tflite/.onnx file: its inputs and outputs (an int8 file's scale and zero point), the contract and labels it
    carries, its operators, and in a quantized file those left in float."""
    from lrfc.api import inspect as inspect_model

    if Path(model).suffix.lower() in (".tflite", ".onnx"):
        from lrfc.lower.artifact_info import artifact_info, render_artifact_info

        info = artifact_info(model)
        _emit_json(info) if as_json else typer.echo(render_artifact_info(info))
        return
    from lrfc.frontend.inspect import render_table

    _import_custom(custom_objects)
    report = inspect_model(model, trust=trust_model, input_shape=_parse_shape(input_shape))
    if as_json:
        _emit_json(report)
    else:
        typer.echo(render_table(report))


# ---------------------------------------------------------------------- build


@app.command()
def build(
    model: ModelArg,
    data: Annotated[str, typer.Option(help=DataHelp + " Without labels (x alone, a folder of images that no class "
                                                "folder or file name labels) the original's answers stand in: "
                                                "--max-acc-drop holds the share changed.")],
    target: Annotated[str, typer.Option(help="A profile name (lrfc profiles list), 'jetson', or a .toml path.")] = DEFAULT["target"],
    objective: Annotated[Optional[str], typer.Option(help="latency, flops, params or memory (default: the target's).")] = None,
    threshold: Annotated[float, typer.Option(help="Feature-map cosine similarity each factorized layer must reach.")] = DEFAULT["threshold"],
    max_acc_drop: Annotated[float, typer.Option(help="Largest top-1 drop on the validation split, in points: the published model stays within it (the original, when no plan does).")] = DEFAULT["max_acc_drop"],
    confidence: Annotated[Optional[float], typer.Option(help="Hold --max-acc-drop at this one-sided confidence, e.g. 0.9: the drop plus its standard error (the two models paired on the validation samples) times the normal quantile must stay within it (default: the drop itself).")] = None,
    max_class_drop: Annotated[Optional[float], typer.Option(help="Also hold each class's recall drop on the validation split within this many points, so a rare class is not given up for the average; fine-tuning then repeats a rarer class's samples so each class is seen about as often (default: off; the report shows each class's recall and flags one that lost far beyond the budget).")] = None,
    methods: Annotated[Optional[str], typer.Option(help=f"Comma list of methods to try (default: all of {', '.join(method_names())}).")] = None,
    step: Annotated[float, typer.Option(help="Rank grid step, in percent of the layer's cost.")] = DEFAULT["step"],
    max_sol: Annotated[int, typer.Option(help="Rungs of the ladder timed as whole models beside the original (--objective latency), and solutions kept in the report.")] = DEFAULT["max_sol"],
    calib_samples: Annotated[int, typer.Option(help="Calibration samples for feature maps and statistics.")] = DEFAULT["calib_samples"],
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs of a round that starts cold; a warm-started round runs this many times the share of its parameters that start fresh (at least 1).")] = DEFAULT["epochs"],
    finetune: Annotated[str, typer.Option(help="oneshot, iterative (the paper's baseline) or none.")] = DEFAULT["finetune"],
    rank_selection: Annotated[str, typer.Option(help="similarity (the paper's), vbmf or energy (weight-based baselines).")] = DEFAULT["rank_selection"],
    energy: Annotated[float, typer.Option(help="Singular-value energy kept by --rank-selection energy.")] = DEFAULT["energy"],
    data_aware: Annotated[str, typer.Option(help="on (fit factors to each layer's outputs on the calibration data), auto (also fit to the weights alone and keep the better per rank: twice the score time) or off.")] = DEFAULT["fit"],
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="Distil from the original model's logits while fine-tuning (on by default; docs/BENCHMARKS.md, 'Fine-tuning alone').")] = DEFAULT["distill"],
    distill_features: Annotated[float, typer.Option(help="Weight of feature-map distillation: each factorized layer's output held near the original layer's while fine-tuning (the original runs inside every training step; 0: off, the default).")] = DEFAULT["distill_features"],
    train_samples: Annotated[Optional[int], typer.Option(help="Use at most this many training samples per fine-tuning round (0: all).")] = DEFAULT["train_samples"],
    max_rounds: Annotated[Optional[int], typer.Option(help="Fine-tuning rounds of the budget search, at most (default 4; with --time-budget, as many as its minutes allow).")] = DEFAULT["max_rounds"],
    batch_size: Annotated[int, typer.Option(help="Fine-tuning batch size.")] = DEFAULT["batch_size"],
    seed: Annotated[int, typer.Option(help="Seed of splits, factorizations and training.")] = DEFAULT["seed"],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory (its results are replaced as one set at the end).")] = DEFAULT["out"],
    plan: Annotated[Optional[str], typer.Option(help="A plan.json to rebuild without searching.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the on-disk cache.")] = False,
    cache_dir: Annotated[Optional[str], typer.Option(help="Cache directory (default: $LRFC_CACHE_DIR or ~/.cache/lrfc).")] = None,
    trust_model: TrustModel = DEFAULT["trust_model"],
    custom_objects: CustomObjects = None,
    formats: Annotated[Optional[str], typer.Option(help="Comma list of tflite, onnx (default: the target's runtimes). The build prices, measures and benchmarks on the target's runtimes that run them: --target host --formats onnx works for ONNX Runtime.")] = None,
    opset: Opset = None,
    device: Annotated[Optional[list[str]], typer.Option(help="Where to measure latency: ssh://user@host[:port], or 'local' (default: this machine for --target host, else estimated). Repeat it for a farm: devices measure in parallel, one measurement per device at a time; every chain is timed on each distinct board (fingerprint), and the plan is priced for the first --device's.")] = None,
    device_python: Annotated[str, typer.Option(help="Python on the --device that runs runtime_bench.")] = DEFAULT["device_python"],
    identity_file: Annotated[Optional[str], typer.Option(help="ssh private key for --device.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="Extra ssh -o option for --device (repeatable).")] = None,
    cost_db: Annotated[Optional[str], typer.Option(help="Cost database of measured latencies (default: $LRFC_COST_DB, else costs.sqlite in the cache directory).")] = None,
    bench_runs: Annotated[int, typer.Option(help="Timed runs per artifact in the final original-vs-compressed benchmark (0: skip).")] = DEFAULT["bench_runs"],
    int8_baseline: Annotated[bool, typer.Option("--int8-baseline/--no-int8-baseline", help="With the benchmark, also lower both models to int8 (post-training quantization: what you would do instead), or to fp32 for an int8 target, and time all four side by side.")] = DEFAULT["int8_baseline"],
    input_range: InputRange = None,
    input_mean: InputMean = None,
    input_std: InputStd = None,
    channel_order: ChannelOrder = None,
    class_names: ClassNames = None,
    allow_low_accuracy: AllowLow = DEFAULT["allow_low_accuracy"],
    allocation: Annotated[str, typer.Option(help="global (each candidate's measured end-to-end effect, allocated under one budget) or threshold (the paper's uniform similarity threshold).")] = DEFAULT["allocation"],
    min_similarity: Annotated[float, typer.Option(help="Global allocation: the lowest feature-map similarity a candidate may have.")] = DEFAULT["min_similarity"],
    time_budget: Annotated[Optional[float], typer.Option(help="Minutes for the whole build: the budget search gives a round the epochs (or at least half an epoch) that still fit, the first at most half the time left, and stops when none do (a tenth of it, at least a minute, is kept for lowering and benchmarks).")] = None,
    reconstruct: Annotated[bool, typer.Option("--reconstruct/--no-reconstruct", help="Refit each factorized layer's last factor to the original layer's output (before fine-tuning).")] = DEFAULT["reconstruct"],
    bn_reestimate: Annotated[bool, typer.Option("--bn-reestimate/--no-bn-reestimate", help="Re-estimate BatchNorm statistics on the calibration data after factorizing.")] = DEFAULT["bn_reestimate"],
    patience: Annotated[int, typer.Option(help="Fine-tuning stops after this many epochs without a better validation accuracy (epochs in the first half of the rate schedule do not count).")] = DEFAULT["patience"],
    qat: Annotated[bool, typer.Option("--qat", help="Fine-tune through int8 fake quantization (quantization-aware training); int8 targets only.")] = DEFAULT["qat"],
    memory_budget: Annotated[Optional[str], typer.Option(help="Memory the build may hold, e.g. 4G or 512M: batches are sized to fit, a budget too small is refused before the heavy work (default: 60% of available memory).")] = None,
    executor: Annotated[str, typer.Option(help="Where scoring and latency-pricing tasks run: inprocess, or ray (pip install 'lrfc\\[ray]'); the plan is the same.")] = DEFAULT["executor"],
    ray_address: Annotated[Optional[str], typer.Option(help="--executor ray: auto, or HOST:PORT of a running Ray cluster (default: start a local one).")] = None,
    input_shape: Annotated[Optional[str], typer.Option(help="Input shape without batch, e.g. 224,224,3: the size to compile a model whose input size is undefined at (None x None) for; its files have that size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json instead of the summary table.")] = False,
):
    """Compress a model: hybrid factorization, one-shot fine-tuning, verified TFLite/ONNX, benchmark, report."""

    from lrfc.api import build as build_model
    from lrfc.errors import VerificationError
    from lrfc.report.fmt import budget_line
    from lrfc.report.text import summary_table

    options = dict(
        objective=objective, threshold=threshold, max_acc_drop=max_acc_drop, confidence=confidence,
        max_class_drop=max_class_drop,
        methods=_split(methods) if methods is not None else method_names(), step=step, max_sol=max_sol,
        calib_samples=calib_samples, epochs=epochs, finetune=finetune, rank_selection=rank_selection, energy=energy,
        seed=seed, cache=not no_cache, cache_dir=cache_dir, plan=plan, train_samples=train_samples or None,
        max_rounds=max_rounds, distill=distill, distill_features=distill_features, fit=data_aware, batch_size=batch_size, trust_model=trust_model,
        custom_objects=tuple(custom_objects or ()),
        formats=_split(formats), opset=opset, device=_devices(device), device_python=device_python, identity_file=identity_file,
        ssh_options=tuple(ssh_option or ()), cost_db=cost_db, bench_runs=bench_runs, int8_baseline=int8_baseline,
        input_range=input_range, input_mean=input_mean, input_std=input_std, channel_order=channel_order,
        class_names=_class_names(class_names), allow_low_accuracy=allow_low_accuracy, allocation=allocation,
        min_similarity=min_similarity,
        time_budget=time_budget, reconstruct=reconstruct, bn_reestimate=bn_reestimate, patience=patience, qat=qat,
        memory_budget=memory_budget, executor=executor, ray_address=ray_address, input_shape=_parse_shape(input_shape),
    )
    failure = None
    try:
        result = build_model(model, data, target, out=out, log=_warn, **options)
    except VerificationError as exc:  # the rest was published: show it, then exit 1
        if not hasattr(exc, "result"):
            raise
        result, failure = exc.result, exc
    if as_json:
        _emit_json(result.report)
        _warn(f"budget: {budget_line(result.report['accuracy_budget'])}")  # the last line, whatever the output
    else:
        typer.echo(f"wrote {', '.join(str(p) for p in result.outputs.values())}")
        typer.echo(summary_table(result.report))  # it ends with the accuracy budget: met, or missed by how much
    if failure is not None:
        raise failure


# ------------------------------------------------------------------ decompose


@app.command()
def decompose(
    model: ModelArg,
    method: Annotated[str, typer.Option("--method", "-m", help=f"One of {', '.join(method_names())}.")],
    out: Annotated[str, typer.Option("--out", "-o", help="The .keras file to write.")],
    rank: Annotated[str, typer.Option(help="'full', one integer for every rank, or a comma list (e.g. 8,16 for Tucker). "
                                           "A rank above a layer's maximum is capped at it, and the output says so.")] = "full",
    layers: Annotated[Optional[str], typer.Option(help="Comma-separated layer names; default: every layer the method applies to.")] = None,
    data: Annotated[Optional[str], typer.Option(help=DataHelp + " Reports output similarity.")] = None,
    data_aware: Annotated[bool, typer.Option("--data-aware", help="Fit factors to each layer's output on --data instead of to its weights.")] = False,
    calib_samples: Annotated[int, typer.Option(help="Calibration samples drawn from --data.")] = 256,
    allow_larger: Annotated[bool, typer.Option("--allow-larger", help="Write the result even when it has more parameters and MACs than the original.")] = False,
    input_range: InputRange = None,
    input_mean: InputMean = None,
    input_std: InputStd = None,
    channel_order: ChannelOrder = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-layer report as JSON.")] = False,
    trust_model: TrustModel = False,
    custom_objects: CustomObjects = None,
):
    """Factorize layers with one method at ranks you choose (no search, no fine-tuning)."""
    from lrfc.factorize.manual import decompose_model

    if calib_samples < 1:
        raise UserError(f"--calib-samples: received {calib_samples}; expected a positive integer")
    _import_custom(custom_objects)
    report = decompose_model(model, method, rank, list(_split(layers)) if layers else None, data, data_aware, out,
                             calib_samples, trust=trust_model, allow_larger=allow_larger,
                             contract=_contract(input_range, input_mean, input_std, channel_order))
    if as_json:
        _emit_json(report)
        return
    for entry in report["layers"]:
        sim = f"  similarity {entry['similarity']:.4f}" if "similarity" in entry else ""
        capped = f"  (--rank capped at the layer's maximum {entry['ranks']})" if entry.get("capped") else ""
        typer.echo(f"{entry['name']}: {entry['method']} ranks {entry['ranks']}  params {entry['params_before']:,} -> "
                   f"{entry['params_after']:,}  MACs {entry['macs_before']:,} -> {entry['macs_after']:,}{sim}{capped}")
    typer.echo(f"total params {report['total_params_before']:,} -> {report['total_params_after']:,}; "
               f"MACs {report['total_macs_before']:,} -> {report['total_macs_after']:,}; wrote {report['out']}")


# --------------------------------------------------------------------- export


EXPORT_DATA_HELP = (DataHelp + " Calibration and verification samples; required for int8. Labels are optional here (an "
                    ".npz without y, a folder of images without class subfolders); with them the original must pass "
                    "the sanity gate first.")


@app.command()
def export(
    model: ModelArg,
    target: Annotated[str, typer.Option(help="A profile name (lrfc profiles list), 'jetson', or a .toml path.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory.")],
    formats: Annotated[Optional[str], typer.Option(help="Comma list of tflite, onnx (default: the target's runtimes).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: the target's).")] = None,
    opset: Opset = None,
    data: Annotated[Optional[str], typer.Option(help=EXPORT_DATA_HELP)] = None,
    calib_samples: Annotated[int, typer.Option(help="Calibration samples drawn from --data (at most 256).")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the sample draws.")] = 0,
    input_range: InputRange = None,
    input_mean: InputMean = None,
    input_std: InputStd = None,
    channel_order: ChannelOrder = None,
    class_names: ClassNames = None,
    allow_low_accuracy: AllowLow = False,
    trust_model: TrustModel = False,
    custom_objects: CustomObjects = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print export.json instead of the table.")] = False,
):
    """Lower a model as it is (no compression) to verified TFLite/ONNX artifacts and export.json."""
    from lrfc.api import export as export_model
    from lrfc.lower.export import render_table

    _import_custom(custom_objects)
    doc = export_model(model, target, out=out, formats=_split(formats), precision=precision, data=data,
                       calib_samples=calib_samples, trust=trust_model, seed=seed, allow_low_accuracy=allow_low_accuracy,
                       log=_warn, input_range=input_range, input_mean=input_mean, input_std=input_std,
                       channel_order=channel_order, class_names=_class_names(class_names), opset=opset)
    if as_json:
        _emit_json(doc)
    else:
        typer.echo(render_table(doc))
        typer.echo(f"wrote {', '.join(a['path'] for a in doc['artifacts'])}, {out}/export.json")


# --------------------------------------------------------------------- verify


@app.command()
def verify(
    artifact: Annotated[Optional[str], typer.Argument(help="A .tflite or .onnx file to check against --model.")] = None,
    model: Annotated[Optional[str], typer.Option(help="The Keras model the artifact was lowered from.")] = None,
    data: Annotated[Optional[str], typer.Option(help=DataHelp + " Verification samples (random inputs without it; required for int8).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8: the tolerance to apply (default: read from the file).")] = None,
    report: Annotated[Optional[str], typer.Option(help="A report.json or export.json: check its files still have the recorded sha256.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sample draw.")] = 0,
    input_range: InputRange = None,
    input_mean: InputMean = None,
    input_std: InputStd = None,
    channel_order: ChannelOrder = None,
    class_names: ClassNames = None,
    allow_low_accuracy: AllowLow = False,
    trust_model: TrustModel = False,
    custom_objects: CustomObjects = None,
    as_json: AsJson = False,
):
    """Rerun the verification gate on an existing artifact, or check a report's files by their sha256. Exit 0 or 1."""
    from lrfc.api import verify as verify_artifact
    from lrfc.lower.check import check_report_files, render_checks, render_record

    if report is not None:
        if artifact is not None or model is not None:
            raise UserError("--report checks the files a report lists; give it alone, or ARTIFACT --model MODEL")
        checks = check_report_files(report)
        _emit_json(checks) if as_json else typer.echo(render_checks(checks))
        bad = [c for c in checks if c["status"] != "match"]
        if bad:
            from lrfc.errors import VerificationError

            raise VerificationError("; ".join(f"{c['name']}: {c['status']}" for c in bad))
        return
    if artifact is None or model is None:
        raise UserError("lrfc verify takes ARTIFACT --model MODEL (or --report report.json)")
    _import_custom(custom_objects)
    record = verify_artifact(artifact, model, data=data, precision=precision, seed=seed, trust=trust_model,
                             allow_low_accuracy=allow_low_accuracy, log=_warn, input_range=input_range,
                             input_mean=input_mean, input_std=input_std, channel_order=channel_order,
                             class_names=_class_names(class_names))
    _emit_json(record.to_json()) if as_json else typer.echo(render_record(record))
    if not record.passed:
        from lrfc.errors import VerificationError

        raise VerificationError(record.error)


# ---------------------------------------------------------------------- bench


def _thread_counts(text: str | None):
    """``--threads``: None, one count, or a comma list of counts (a sweep); a bad value is the user's error."""
    from runtime_bench.measure import parse_threads

    try:
        return None if text is None else parse_threads(text)
    except ValueError as exc:
        raise UserError(f"--threads: {exc}") from None


@app.command()
def bench(
    artifacts: Annotated[list[str], typer.Argument(help=".tflite or .onnx files; each runs in its own runtime (alternating) unless --runtime names one.")],
    runtime: Annotated[Optional[str], typer.Option(help=f"One of {', '.join(RUNNERS)} (default: from each file's suffix).")] = None,
    threads: Annotated[Optional[str], typer.Option(help="Runtime threads (default: the runtime's); several, e.g. 1,2: every file timed at each count in the one alternating run.")] = None,
    runs: Annotated[int, typer.Option(help="Timed inferences per file.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed inferences per file first.")] = 5,
    rounds: Annotated[int, typer.Option(help="Passes over the files, in alternating order.")] = 5,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 1,
    io: Annotated[str, typer.Option(help="host: numpy in and out every run (a GPU's copies timed); device: inputs and outputs left in the runtime's memory (ONNX Runtime); graph: device plus CUDA graph replay (ONNX Runtime CUDA/TensorRT).")] = "host",
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Load all files in one worker per runtime; no peak-memory figures.")] = False,
    as_json: AsJson = False,
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
    from lrfc.lower.check import stale_artifacts
    from lrfc.api import bench as run_bench
    from runtime_bench.measure import format_table

    kwargs = dict(runtime=runtime, threads=_thread_counts(threads), runs=runs, warmup=warmup, rounds=rounds,
                  batch=batch, memory=not no_memory, io=io)
    if device not in (None, "local"):
        kwargs.update(python=device_python, identity=identity_file, ssh_options=tuple(ssh_option or ()))
    elif identity_file or ssh_option or device_python != "python3":
        raise UserError("--device-python, --identity-file and --ssh-option apply to --device ssh://...; "
                        "received them without a device")
    for warning in stale_artifacts(artifacts):
        _warn(f"lrfc: warning: {warning}")
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
def profiles_list(as_json: AsJson = False):
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
    as_json: AsJson = False,
):
    """Show one target profile."""
    from lrfc.targets import load_profile, profile_to_dict

    data = profile_to_dict(load_profile(name))
    if as_json:
        _emit_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")


@profiles_app.command("probe")
def profiles_probe(
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="The .toml profile to write.")] = None,
    target: Annotated[str, typer.Option(help="The profile to start from: runtimes, precision, threads, memory budget.")] = "host",
    device: Annotated[Optional[str], typer.Option(help="ssh://user@host[:port] to probe over ssh (default: this machine).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="The runtime to probe (default: the target's first).")] = None,
    precisions: Annotated[Optional[str], typer.Option(help="Comma list of fp32, int8 (default: fp32 and the target's precision).")] = None,
    device_python: Annotated[str, typer.Option(help="Python on the --device that runs runtime_bench.")] = "python3",
    identity_file: Annotated[Optional[str], typer.Option(help="ssh private key for --device.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option(help="Extra ssh -o option for --device (repeatable).")] = None,
    export: Annotated[Optional[str], typer.Option(
        "--export", help="For a device lrfc cannot reach: write the probe's models and the command that times them "
                         "there into this folder, and stop.")] = None,
    import_from: Annotated[Optional[str], typer.Option(
        "--import", help="Read an --export folder whose results.json came back from the device; write --out.")] = None,
    as_json: AsJson = False,
):
    """Measure a device (peak compute, bandwidth, per-operator overhead, channel multiple) and write its profile."""
    from lrfc.cost.probe import run_probe

    measured, profile = run_probe(target, out, device=device, runtime=runtime, precisions=_split(precisions),
                                  device_python=device_python, identity_file=identity_file,
                                  ssh_options=tuple(ssh_option or ()), export=export, import_from=import_from,
                                  log=_warn)
    if profile is None:  # --export: the manifest
        if as_json:
            _emit_json(measured)
            return
        typer.echo(f"wrote {export}: {sum(len(m) for m in measured['models'].values())} models for "
                   f"{measured['runtime']}")
        typer.echo(f"on the device, in that folder (runtime_bench and {measured['runtime']} installed): "
                   f"{measured['command']}")
        typer.echo(f"then here: lrfc profiles probe --target {target} --import {export} --out BOARD.toml")
        return
    if as_json:
        _emit_json(measured.to_json())
        return
    typer.echo(f"wrote {out}: {profile.description}")
    for precision, gops in measured.peak_gops.items():
        typer.echo(f"peak {precision}: {gops:g} GOP/s; ranks in multiples of {measured.multiples[precision]}")
    typer.echo(f"memory bandwidth: {measured.bandwidth_gbps:g} GB/s; per-operator overhead: "
               f"{measured.op_overhead_us:g} us")


# ------------------------------------------------------------------------ main


def one_line(exc: BaseException) -> str:
    """An error message on one line, whatever the exception carried (a worker's stderr tail, ...)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def _on_signal(signum, frame):
    from lrfc.errors import Interrupted

    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (see the module doc).

    Any exception other than ``UserError``, ``VerificationError`` and an
    interruption is a bug and propagates with its traceback.
    """
    import signal

    from lrfc.errors import Interrupted, VerificationError
    from lrfc.provenance import record_command

    record_command(sys.argv[1:] if argv is None else argv)  # report.json and export.json say what was run
    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, _on_signal) for s in handled}
    except ValueError:  # not the main thread (embedded use): leave signals alone
        previous = {}
    try:
        status = app(args=argv, standalone_mode=False)
    except (UserError, VerificationError) as exc:
        if _state["verbose"]:
            traceback.print_exc()
        stderr_line(f"lrfc: error: {one_line(exc)}")
        return 2 if isinstance(exc, UserError) else 1
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        if _state["verbose"]:
            traceback.print_exc()
        stderr_line(f"lrfc: interrupted by {signal.Signals(signum).name}: an unfinished run publishes nothing, so the "
                    "output folder keeps its earlier results (the cache keeps what was scored)")
        return 128 + int(signum)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        stderr_line("lrfc: aborted")
        return 1
    except Exception as exc:  # usage errors (typer's bundled click exceptions): one line too
        from typer.exceptions import TyperException

        if isinstance(exc, TyperException) and hasattr(exc, "format_message"):
            where = getattr(getattr(exc, "ctx", None), "command_path", "lrfc")
            stderr_line(f"lrfc: error: {one_line(exc.format_message())} (see `{where} --help`)")
            return exc.exit_code
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        record_command(None)  # a Python API call after this one ran no command
    return status if isinstance(status, int) else 0


if __name__ == "__main__":
    sys.exit(main())
