"""`pigeonhole model …`: build a model package, or verify one as the runtime would load it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pigeonhole.model.manifest import Manifest
from pigeonhole.model.unknown import UNKNOWN_FEATURES as UNKNOWN_FEATURE_NAMES
from pigeonhole_tools.training import defaults as d

model_app = typer.Typer(help="Build and inspect model packages.", no_args_is_help=True)

EXIT_DATA_ERROR = 2
EXIT_REFUSED = 3

_TRAINING = "Training"
_GATES = "Release gates"
_PACKAGE = "Package"


@model_app.command("build")
def build(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", help="Labelled training data (.csv with a header, or .jsonl).")],
    name: Annotated[str, typer.Option("--name", help="Model name recorded in the manifest.", rich_help_panel=_PACKAGE)],
    version: Annotated[str, typer.Option("--version", help="Model version, e.g. 1.0.0.", rich_help_panel=_PACKAGE)],
    out: Annotated[Path, typer.Option("--out", help="Package directory (model.onnx, manifest.json, vocab.txt).")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column with the text.")] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Column with the label.")] = "category",
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval-data", help="Labelled test data; without it a stratified share of --data is held out."),
    ] = None,
    eval_fraction: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Held-out share of --data when --eval-data is absent.")
    ] = d.EVAL_FRACTION,
    validation_fraction: Annotated[
        float, typer.Option(min=0.01, max=0.5, help="Share of the training rows that chooses the review threshold.")
    ] = d.VALIDATION_FRACTION,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit/--no-refit",
            help="After choosing the threshold, train the shipped model on all training rows (two trainings).",
            rich_help_panel=_TRAINING,
        ),
    ] = d.REFIT,
    epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_TRAINING)] = d.EPOCHS,
    hidden: Annotated[int, typer.Option(min=1, help="MLP hidden units.", rich_help_panel=_TRAINING)] = d.HIDDEN,
    layers: Annotated[int, typer.Option(min=1, max=3, help="MLP hidden layers.", rich_help_panel=_TRAINING)] = d.LAYERS,
    word_ngrams: Annotated[
        str, typer.Option(help="Word n-gram range, e.g. 1,2.", rich_help_panel=_TRAINING)
    ] = ",".join(map(str, d.WORD_NGRAMS)),
    char_ngrams: Annotated[
        str, typer.Option(help="Character n-gram range, e.g. 1,4.", rich_help_panel=_TRAINING)
    ] = ",".join(map(str, d.CHAR_NGRAMS)),
    max_features: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Cap each vectorizer (word, char) at its N most frequent n-grams; default: no cap.",
            rich_help_panel=_TRAINING,
        ),
    ] = d.MAX_FEATURES,
    batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=_TRAINING)] = d.BATCH_SIZE,
    alpha: Annotated[float, typer.Option(min=0.0, help="L2 penalty.", rich_help_panel=_TRAINING)] = d.ALPHA,
    learning_rate: Annotated[
        float, typer.Option(min=1e-7, help="Adam step size.", rich_help_panel=_TRAINING)
    ] = d.LEARNING_RATE,
    seed: Annotated[
        int, typer.Option(help="Seeds splits, initialization and shuffling.", rich_help_panel=_TRAINING)
    ] = d.SEED,
    max_accuracy_drop: Annotated[
        float, typer.Option(min=0.0, help="Refuse if int8 accuracy is this far below fp32.", rich_help_panel=_GATES)
    ] = d.MAX_ACCURACY_DROP,
    min_int8_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Refuse if int8 holds less of the weight bytes.", rich_help_panel=_GATES),
    ] = d.MIN_INT8_SHARE,
    max_model_mb: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Refuse if the int8 model.onnx exceeds this many MB (10^6 B); 0: no budget.",
            rich_help_panel=_GATES,
        ),
    ] = d.MAX_MODEL_MB,
    target_auto_precision: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Accuracy the auto-routed events must reach on validation."),
    ] = d.TARGET_AUTO_PRECISION,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate/--no-calibrate", help="Temperature scaling fitted on the validation rows, inside the graph."
        ),
    ] = d.CALIBRATE,
    per_class_correction: Annotated[
        str,
        typer.Option(
            help="Per-class thresholds: 'none' (Wilson z = 1.96 per class) or 'bonferroni' (z corrected for "
            "the number of classes: fewer thresholds fitted to noise).",
            callback=lambda value: _choice(value, ("none", "bonferroni")),
        ),
    ] = d.PER_CLASS_CORRECTION,
    unknown_holdout_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.5, help="Share of intents a third training leaves out to fit the unknown score (0: none)."
        ),
    ] = d.UNKNOWN_HOLDOUT_SHARE,
    unknown_target_known_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Unknown threshold: at most this share of known validation events."),
    ] = d.UNKNOWN_TARGET_KNOWN_SHARE,
    unknown_features: Annotated[
        str,
        typer.Option(
            help="The unknown score's inputs, comma-separated, or 'auto' (max_prob,hidden_distance,oov_share). Known: "
            + ", ".join(UNKNOWN_FEATURE_NAMES),
            callback=lambda value: _feature_list(value),  # noqa: PLW0108 (defined below)
        ),
    ] = d.UNKNOWN_FEATURES,
    threads: Annotated[int, typer.Option(min=1, help="onnxruntime threads for the accuracy passes.")] = d.THREADS,
    latency_repeats: Annotated[int, typer.Option(min=1, help="Timed runs per latency figure.")] = d.LATENCY_REPEATS,
    input_field: Annotated[
        str, typer.Option(help="Event field the model reads.", rich_help_panel=_PACKAGE)
    ] = d.INPUT_FIELD,
    max_chars: Annotated[
        int, typer.Option(min=1, help="Longest accepted text.", rich_help_panel=_PACKAGE)
    ] = d.MAX_CHARS,
    top_k: Annotated[int, typer.Option(min=1, help="Scores per output event.", rich_help_panel=_PACKAGE)] = d.TOP_K,
) -> None:
    """Train, export, quantize, evaluate and package a text classifier; refuse a package that fails a gate."""
    from pigeonhole_tools.training.build import BuildOptions, run_build
    from pigeonhole_tools.training.errors import BuildRefusedError, DataError
    from pigeonhole_tools.training.progress import Reporter
    from pigeonhole_tools.training.train import TrainParams

    err = Console(stderr=True)
    options = BuildOptions(
        data=data,
        name=name,
        version=version,
        out=out,
        text_column=text_column,
        label_column=label_column,
        eval_data=eval_data,
        params=TrainParams(
            hidden=hidden,
            layers=layers,
            epochs=epochs,
            batch_size=batch_size,
            alpha=alpha,
            learning_rate=learning_rate,
            seed=seed,
            word_ngrams=_ngram_range(word_ngrams),
            char_ngrams=_ngram_range(char_ngrams),
            max_features=max_features,
        ),
        eval_fraction=eval_fraction,
        validation_fraction=validation_fraction,
        refit=refit,
        max_accuracy_drop=max_accuracy_drop,
        target_auto_precision=target_auto_precision,
        calibrate=calibrate,
        unknown_holdout_share=unknown_holdout_share,
        unknown_target_known_share=unknown_target_known_share,
        unknown_features=_features_option(unknown_features),
        per_class_correction=per_class_correction,
        min_int8_share=min_int8_share,
        max_model_mb=max_model_mb,
        threads=threads,
        latency_repeats=latency_repeats,
        input_field=input_field,
        max_chars=max_chars,
        top_k=top_k,
        command=_command_line(ctx),
    )
    try:
        manifest = run_build(options, Reporter(err))
    except DataError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}\nnothing was written to {out}", soft_wrap=True)
        raise typer.Exit(EXIT_DATA_ERROR) from exc
    except BuildRefusedError as exc:
        err.print(f"[red]refused:[/red] {escape(str(exc))}\nnothing was written to {out}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    Console().print(summary_table(manifest))
    err.print(f"[green]wrote[/green] {out} ({manifest.name} {manifest.version}, sha256 {manifest.model.sha256[:12]}…)")


@model_app.command("evaluate-unknown")
def evaluate_unknown_cmd(
    data: Annotated[Path, typer.Option("--data", help="Labelled training data (.csv or .jsonl).")],
    eval_data: Annotated[Path, typer.Option("--eval-data", help="Labelled test data.")],
    report: Annotated[Path, typer.Option("--report", help="Where to write the JSON report.")],
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str, typer.Option("--label-column")] = "category",
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds, one build each.")] = "0,1,2",
    unseen: Annotated[int, typer.Option("--unseen", min=1, help="Intents removed per seed.")] = 10,
    latency_repeats: Annotated[int, typer.Option(min=1)] = 5,
    refit: Annotated[
        bool, typer.Option("--refit/--no-refit", help="As in build; --no-refit saves one training per seed.")
    ] = d.REFIT,
    epochs: Annotated[int, typer.Option(min=1)] = d.EPOCHS,
    hidden: Annotated[int, typer.Option(min=1)] = d.HIDDEN,
    unknown_features: Annotated[
        str, typer.Option(help="As in build.", callback=lambda value: _feature_list(value))  # noqa: PLW0108
    ] = d.UNKNOWN_FEATURES,
) -> None:
    """Hold intents out of the build (per seed), then measure how the package routes their test events."""
    import json

    from pigeonhole_tools.training.build import BuildOptions
    from pigeonhole_tools.training.progress import Reporter
    from pigeonhole_tools.training.train import TrainParams
    from pigeonhole_tools.training.unknown_eval import evaluate_unknown

    err = Console(stderr=True)
    base = BuildOptions(
        data=data,
        eval_data=eval_data,
        name="unknown-eval",
        version="0.0.0",
        out=report.parent / "unused",
        text_column=text_column,
        label_column=label_column,
        latency_repeats=latency_repeats,
        refit=refit,
        params=TrainParams(epochs=epochs, hidden=hidden),
        unknown_features=_features_option(unknown_features),
    )
    result = evaluate_unknown(base, [int(s) for s in seeds.split(",")], unseen, Reporter(err))
    report.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    Console().print(unknown_table(result))
    err.print(f"[green]wrote[/green] {report}")


def unknown_table(result: dict[str, object]) -> Table:
    """Mean ± sd over seeds: recall of never-seen intents at each known-intent accuracy, both methods."""
    summary = result["summary"]
    table = Table(title=f"never-seen intents ({result['n_unseen_intents']} per seed)")
    table.add_column("known-intent accuracy ≥")
    table.add_column("unseen recall, unknown score", justify="right")
    table.add_column("unseen recall, max-prob only", justify="right")
    levels = _get(summary, "recall_at_known_accuracy")
    if isinstance(levels, dict):
        for level in levels.get("unknown_score", {}):
            cells = []
            for method in ("unknown_score", "max_prob"):
                cell = _get(levels, method, level)
                cells.append(f"{cell['mean']:.3f} ± {cell['sd']:.3f}" if isinstance(cell, dict) else "unreached")
            table.add_row(level, *cells)
    op = _get(summary, "operating_point")
    if isinstance(op, dict):
        for key, cell in op.items():
            if isinstance(cell, dict):
                table.add_row(f"operating point: {key}", f"{cell['mean']:.4f} ± {cell['sd']:.4f}", "")
    return table


@model_app.command("verify")
def verify(
    model_dir: Annotated[Path, typer.Argument(help="A package directory, e.g. layers/model.")],
    unknown_report: Annotated[
        Path | None,
        typer.Option(
            "--unknown-report",
            help="An `evaluate-unknown` JSON report to print with the package's numbers (never-seen intents, "
            "measured on rebuilds that left them out), checked against the package's data and unknown score.",
        ),
    ] = None,
) -> None:
    """Load a package exactly as the classifier does (hash check included) and print its numbers:
    quality, size, latency, calibration, the unknown operating point and the thresholds."""
    import json

    from pigeonhole.model.runtime import ModelRuntime
    from pigeonhole_tools.training.routing_report import routing_tables

    runtime = ModelRuntime.load(model_dir)
    console = Console()
    console.print(summary_table(runtime.manifest))
    for table in routing_tables(runtime.manifest):
        console.print(table)
    if unknown_report is not None:
        result = json.loads(unknown_report.read_text(encoding="utf-8"))
        console.print(unknown_table(result))
        for line in report_mismatches(result, runtime.manifest):
            console.print(f"[yellow]note:[/yellow] {escape(line)}", soft_wrap=True)


def report_mismatches(result: dict[str, object], manifest: Manifest) -> list[str]:
    """Why an evaluate-unknown report may not describe this package (empty when it matches)."""
    notes = []
    data = result.get("data_sha256")
    if data is None:
        notes.append("the report does not record its training data; cannot check it is this package's")
    elif data != manifest.training_data.train_sha256:
        notes.append("the report was measured on other training data than this package's")
    features = result.get("unknown_features")
    shipped = manifest.unknown.features if manifest.unknown is not None else None
    if features != shipped:
        notes.append(f"the report's unknown score uses {features}, this package's {shipped}")
    return notes


@model_app.command("golden")
def golden_set(
    model_dir: Annotated[Path, typer.Argument(help="A package directory, e.g. layers/model.")],
    eval_data: Annotated[Path, typer.Option("--eval-data", help="The labelled held-out data the build evaluated on.")],
    text_column: Annotated[str, typer.Option("--text-column")] = "text",
    label_column: Annotated[str, typer.Option("--label-column")] = "category",
    seed: Annotated[int, typer.Option("--seed")] = d.SEED,
) -> None:
    """Add (or redraw) the golden set of an existing package without retraining; `build` does the same step."""
    from pigeonhole_tools.training.data import load_labelled
    from pigeonhole_tools.training.errors import BuildRefusedError
    from pigeonhole_tools.training.golden import add_golden

    err = Console(stderr=True)
    data = load_labelled(eval_data, text_column, label_column)
    try:
        manifest = add_golden(model_dir, data.texts, data.labels, source=str(eval_data), seed=seed)
    except BuildRefusedError as exc:
        err.print(f"[red]refused:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    spec = manifest.golden
    assert spec is not None  # add_golden sets it
    err.print(
        f"[green]wrote[/green] {model_dir / spec.file}: {spec.n_events} events over {spec.n_classes} classes, "
        f"int8 accuracy {spec.accuracy_int8:.4f}, min_accuracy {spec.min_accuracy}, min_agreement {spec.min_agreement}"
    )


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _feature_list(value: str) -> str:
    """'auto' or a comma-separated list of the runtime's unknown-score features, each once."""
    if value == "auto":
        return value
    names = [part.strip() for part in value.split(",")]
    bad = [n for n in names if n not in UNKNOWN_FEATURE_NAMES]
    if bad or not names or len(set(names)) != len(names):
        raise typer.BadParameter(
            f"expected 'auto' or distinct names from {', '.join(UNKNOWN_FEATURE_NAMES)}, got {value!r}"
        )
    return ",".join(names)


def _features_option(value: str) -> tuple[str, ...] | None:
    return None if value == "auto" else tuple(value.split(","))


def _ngram_range(text: str) -> tuple[int, int]:
    """'1,2' -> (1, 2); a bad range is a usage error, not a traceback."""
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected two integers like 1,2, got {text!r}") from None
    if not 1 <= low <= high:
        raise typer.BadParameter(f"n-gram range {text!r} must satisfy 1 <= low <= high")
    return low, high


def _command_line(ctx: typer.Context) -> str:
    """The build as one explicit command, every option spelled out (defaults too): rerunning it rebuilds."""
    words = ["pigeonhole", "model", "build"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None or not param.opts:
            continue
        if isinstance(value, bool):
            words.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def _get(tree: object, *path: str) -> object:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _fmt(value: object, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "–"


def summary_table(manifest: Manifest) -> Table:
    """The headline numbers of a package: quality, agreement, size, latency, threshold."""
    m = manifest.metrics
    table = Table(title=f"{manifest.name} {manifest.version}", show_header=True)
    table.add_column("measure")
    table.add_column("fp32", justify="right")
    table.add_column("int8", justify="right")
    for label, key in (("accuracy", "accuracy"), ("macro-F1", "macro_f1"), ("ECE (15 bins)", "ece_15")):
        table.add_row(label, _fmt(_get(m, "fp32", key)), _fmt(_get(m, "int8", key)))
    table.add_row(
        "size (MB)", _fmt(_mb(_get(m, "sizes", "fp32_bytes")), ".2f"), _fmt(_mb(_get(m, "sizes", "int8_bytes")), ".2f")
    )
    for label, key in (("latency, 1 event (ms)", "single_event_ms"), ("latency, 10 events (ms)", "batch_of_10_ms")):
        table.add_row(label, _fmt(_get(m, "latency", "fp32", key), ".3f"), _fmt(_get(m, "latency", "int8", key), ".3f"))
    table.add_row("size budget, int8 (MB; 0: none)", "", _fmt(_get(m, "size_budget", "max_model_mb"), ".1f"))
    table.add_row("top-1 agreement fp32/int8", "", _fmt(_get(m, "fp32_vs_int8", "top1_agreement")))
    table.add_row("max |Δp| fp32/int8", "", _fmt(_get(m, "fp32_vs_int8", "max_abs_prob_diff")))
    table.add_row("int8 share of weight bytes", "", _fmt(_get(m, "quantization", "int8_share")))
    table.add_row("review threshold", "", _fmt(manifest.thresholds.review_confidence))
    table.add_row("auto-routed share (eval)", "", _fmt(_get(m, "review_threshold", "eval", "coverage")))
    table.add_row("auto-routed accuracy (eval)", "", _fmt(_get(m, "review_threshold", "eval", "auto_accuracy")))
    return table


def _mb(value: object) -> float | None:
    return value / 1e6 if isinstance(value, int | float) else None
