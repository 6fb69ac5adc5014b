"""The ``harness`` command. Heavy modules (torch, the scorer) are imported only by the commands that need them,
so ``harness ls`` and ``harness plugins`` stay fast and torch-free."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.listing import FORMATS
from harness.paths import default_runs_dir
from harness.plugins.registry import KINDS, UnknownNameError, get_registry


def _parse_config(items: Sequence[str]) -> dict[str, Any]:
    import yaml

    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"harness: --config expects KEY=VALUE, got {item!r}")
        try:
            config[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = " ".join(str(getattr(err, "problem", None) or err).split())
            raise SystemExit(f"harness: --config {item!r}: the value of {key} is not valid YAML ({problem}); "
                             f"quote it to pass it as a string, e.g. --config '{key}=\"{value}\"'") from None
    return config


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def cmd_ls(args: argparse.Namespace) -> int:
    from harness.listing import emit

    registry = get_registry()
    console = _console()
    rows = []
    for name, spec in sorted(registry.specs[args.kind].items()):
        extra = ""
        if args.kind == "metrics":
            extra = f"{spec.title} [{spec.direction} is better] {spec.settings}"
        elif args.kind == "datasets":
            from harness.data.status import locate

            where = locate(spec)
            state = f"[green]found[/green] at {where.root}" if where.found else "[yellow]not found[/yellow]"
            extra = (f"{spec.description} protocols: {', '.join(spec.protocols) or 'none yet'}.\n{state}; looked in: "
                     f"{'; '.join(where.looked)}.\nhow to obtain: {spec.obtain}")
        elif args.kind == "methods":
            extra = f"{spec.description} [{spec.status}]"
        else:
            extra = spec.description
        rows.append([name, registry.owner(args.kind, name), extra])
    emit(console, f"harness {args.kind}", ["name", "plugin", "description"], rows, args.format,
         wide_text=["description"])
    if registry.failures:
        console.print(f"[red]{len(registry.failures)} plugin(s) failed to load; see `harness plugins`[/red]")
    return 0


def cmd_datasets_check(args: argparse.Namespace) -> int:
    from harness.data.resolve import resolve_protocol
    from harness.data.status import check_dataset

    registry = get_registry()
    spec = registry.dataset(args.name)
    protocol = resolve_protocol(spec, args.protocol) if args.protocol else None
    inventory = check_dataset(spec, args.data_root, protocol, deep=args.deep)
    console = _console()
    console.print(f"[bold]{spec.title}[/bold] ({inventory.layout}) at {inventory.root}")
    console.print_json(data=inventory.found) if inventory.found else console.print("found: nothing")
    if inventory.ok:
        console.print("[green]no problems found[/green]")
        return 0
    console.print(f"[red]{len(inventory.problems)} problem(s):[/red]")
    for problem in inventory.problems:
        console.print(f"  - {problem}", markup=False)
    return 1


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.listing import emit

    registry = get_registry()
    console = _console()
    emit(console, "loaded plugins", ["plugin", "distribution", "version", "module", "provides"],
         [[p.name, p.distribution, p.version, p.module, ", ".join(p.provides)] for p in registry.plugins],
         args.format, wide_text=["provides"])
    if registry.failures:
        failed = Table(title="failed plugins", title_justify="left", style="red")
        for col in ("plugin", "distribution", "stage", "error"):
            failed.add_column(col)
        for f in registry.failures:
            failed.add_row(f.plugin, f.distribution, f.stage, f.error)
        console.print(failed)
    else:
        console.print("no plugin failed to load")
    return 0


class _Progress:
    """Progress fed by the runner's (stage, done, total) callbacks: a rich bar on a terminal; elsewhere (a pipe,
    nohup, CI or SLURM logs) one flushed plain line per step, with elapsed time and ETA, so logs stream."""

    PLAIN_EVERY_S = 5.0  # between plain lines while a stage runs (its first and last steps are always printed)

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.plain = not console.is_terminal
        self.progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False, disable=self.plain)
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, tuple[float, int]] = {}
        self.printed: dict[str, float] = {}

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int, note: str = "") -> None:
        if self.plain:
            self._line(stage, done, total, note)
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def _line(self, stage: str, done: int, total: int, note: str) -> None:
        now = time.perf_counter()
        start, first_done = self.started.setdefault(stage, (now, done))
        last = self.printed.get(stage)
        if last is not None and done < total and now - last < self.PLAIN_EVERY_S:
            return
        self.printed[stage] = now
        elapsed = now - start
        rate = (done - first_done) / elapsed if elapsed > 0 and done > first_done else 0.0
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
        print(f"{stage} {done}/{total} ({100 * done / max(total, 1):.0f}%), elapsed {elapsed:.0f} s{eta}"
              f"{', ' + note if note else ''}", flush=True)


def _print_results(console: Any, scored: Any, registry: Any) -> None:
    from rich.table import Table

    from harness.report.aggregate import summary_table

    rows = summary_table(scored.metrics, scored.expected_images, registry, scored.unavailable_metrics)
    table = Table(title="results (mean over images)", title_justify="left")
    for col in ("metric", "variant", "better", "mean", "95% interval", "images", "undefined"):
        table.add_column(col, justify="left" if col in ("metric", "variant", "better") else "right")
    for r in rows:
        if r["unavailable"]:
            table.add_row(r["title"], "-", r["direction"], "[red]missing[/red]", "-", "-", "-")
            continue
        images = f"{r['images']} / {r['expected']}" + ("" if r["complete"] else " [red]incomplete[/red]")
        mean = "n/a" if r["mean"] is None else f"{r['mean']:.4f}"
        interval = "" if r["ci_low"] is None else f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        table.add_row(r["title"], r["variant"], r["direction"], mean, interval, images, str(r["undefined"]))
    console.print(table)
    titles = {r["metric"]: r["title"] for r in rows}
    for item in scored.unavailable_metrics:
        console.print(f"[yellow]metric {titles.get(item['metric'], item['metric'])} not computed:[/yellow] "
                      f"{item['reason']}")


def _print_problems(console: Any, failed: Sequence[tuple[str, str]], scored: Any) -> bool:
    for unit, error in failed:
        console.print(f"[red]unit {unit} failed:[/red] {error}")
    for unit in scored.missing_units:
        if unit not in {u for u, _ in failed}:
            console.print(f"[red]unit {unit} has no predictions[/red]")
    for err in scored.errors:
        console.print(f"[red]not scored:[/red] {err['error']}")
    return bool(failed or scored.missing_units or scored.errors)


def _executor_choice(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    from harness.executors import ExecutorConfigError

    options: dict[str, str] = {}
    for item in args.executor_config:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExecutorConfigError(f"--executor-config expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value
    executor = args.executor
    if args.workers is not None:
        if executor not in ("local", "workers"):
            raise ExecutorConfigError(f"--workers runs local worker processes; it does not combine with "
                                      f"--executor {executor}")
        executor, options["workers"] = "workers", str(args.workers)
    if args.score_on == "slurm" and executor != "slurm":
        raise ExecutorConfigError("--score-on slurm needs --executor slurm (its options say where the job goes)")
    return executor, options


def _check_metric_precision(mode: str, device: str) -> None:
    """Refuse a metric precision the device cannot run before any work starts."""
    from harness.provenance import resolve_device
    from harness.scoring.precision import MetricPrecisionError, check_precision

    try:
        check_precision(mode, resolve_device(device))
    except MetricPrecisionError as err:
        raise SystemExit(f"harness: {err}") from None


CODEC_HELP = ("score the predictions after an H.264 crf-14 yuv420p MP4 round trip, as the NeRSemble benchmark server "
              "scores submissions (the protocol's scoring.codec_roundtrip)")


def _codec_flag(args: argparse.Namespace) -> Any:
    from harness.scoring.codec import CodecRoundTrip

    return CodecRoundTrip() if args.codec_roundtrip else None


def _print_codec(console: Any, run_dir: Path) -> None:
    from harness.scoring.codec import recorded_codec
    from harness.store import RunStore

    codec = recorded_codec(RunStore(run_dir).read_run())
    if codec is not None:
        console.print(codec.describe(), markup=False)


def cmd_run(args: argparse.Namespace) -> int:
    import shlex

    from harness.runner import RunRequest, run

    registry = get_registry()
    registry.method(args.method)  # an unknown name is refused before torch is imported (seconds saved)
    registry.dataset(args.dataset)
    executor, executor_config = _executor_choice(args)
    registry.executor(executor)
    _check_metric_precision(args.metric_precision, args.device)
    console = _console()
    protocol = args.protocol
    if args.codec_roundtrip:  # the protocol with its scoring section set: a run of its own (see README)
        from harness.scoring.codec import CodecRoundTrip, protocol_file_with_codec

        protocol = str(protocol_file_with_codec(registry.dataset(args.dataset), args.protocol,
                                                Path(args.runs_dir) / ".protocols", CodecRoundTrip()))
    request = RunRequest(
        method=args.method, dataset=args.dataset, protocol=protocol,
        data_root=Path(args.data_root) if args.data_root else None, runs_dir=Path(args.runs_dir),
        config=_parse_config(args.config), seed=args.seed, device=args.device, executor=executor,
        executor_config=executor_config, score_on=args.score_on,
        strict_metrics=args.strict, wait=args.wait, metric_precision=args.metric_precision,
        command="harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    for failure in registry.failures:
        console.print(f"[yellow]plugin {failure.plugin} ({failure.distribution or 'no distribution'}) failed to load "
                      f"at {failure.stage}:[/yellow] {failure.error}", markup=True)
    with _Progress(console) as progress:
        result = run(request, registry, progress,
                     notify=lambda message: console.print(message, style="yellow", markup=False))
    _print_results(console, result["scored"], registry)
    timing = result["record"]["timing"]
    console.print(f"time: {timing['wall_s']:.1f} s wall: torch import {timing['torch_import_s']:.1f} s, "
                  f"method {timing['method_s']:.1f} s, metrics {timing['metrics_s']:.1f} s, "
                  f"everything else {timing['other_s']:.1f} s ({100 * timing['other_share']:.1f}%)")
    skipped = result["prepared"].skipped
    if skipped:
        reasons = sorted(set(skipped.values()))
        console.print(f"[yellow]{len(skipped)} unit(s) skipped by the method's capabilities:[/yellow] "
                      f"{'; '.join(reasons)}")
    if result["record"].get("synthetic_demo"):
        console.print("[magenta]synthetic-demo model:[/magenta] predicted with a stand-in trained on procedural heads "
                      "(not the method's full-size weights); every report marks this run")
    _print_codec(console, result['prepared'].store.root)
    console.print(f"run folder: {result['prepared'].store.root}")
    console.print(f"summary: {result['report']}")
    console.print(f"report: {result['site']}")
    return 1 if _print_problems(console, result["predicted"].failed, result["scored"]) else 0


def cmd_synth(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from harness.synth.cameras import camera_set
    from harness.synth.corpus import CorpusConfig, generate_corpus

    known = {f.name for f in fields(CorpusConfig)} - {"seed"}  # the seed is --seed
    values = _parse_config(args.config)
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"harness: unknown corpus setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    config = CorpusConfig(**{**values, "seed": args.seed})
    console = _console()
    views = len(camera_set(config.camera_set, config.resolution)[0])
    console.print(f"corpus: {config.count} samples x {views} views at {config.resolution}x{config.resolution} "
                  f"into {args.out}")
    import time

    t0 = time.perf_counter()
    with _Progress(console) as progress:
        manifest = generate_corpus(Path(args.out), config, workers=args.workers,
                                   progress=lambda done, total: progress("synth", done, total))
    seconds = time.perf_counter() - t0
    console.print(f"manifest: {Path(args.out) / 'manifest.json'} ({manifest['count']} samples, {seconds:.1f} s; "
                  f"nearest evaluation subject at identity distance {manifest['nearest_evaluation_distance']:.3f})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import shlex

    from harness.training.loop import TrainRequest, train

    registry = get_registry()
    spec = registry.trainer(args.method)
    console = _console()
    request = TrainRequest(trainer=spec.name, data=args.data, runs_dir=Path(args.runs_dir),
                           data_root=Path(args.data_root) if args.data_root else None,
                           config=_parse_config(args.config), seed=args.seed, steps=args.steps,
                           device=args.device, checkpoint_every=args.checkpoint_every,
                           command="harness " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                           synthetic_demo=not args.full)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not console.is_terminal:  # a log file or pipe: plain flushed lines
        with _Progress(console) as lines:
            result = train(request, spec, lambda done, total, losses: lines(
                "train", done, total, f"loss {losses.get('loss', float('nan')):.5f}"))
    else:
        with Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("train", total=None, loss="")

            def progress(done: int, total: int, losses: Any) -> None:
                bar.update(task, completed=done, total=total, loss=f"loss {losses.get('loss', float('nan')):.5f}")

            result = train(request, spec, progress)
    console.print(f"training run: {result.root} (resumed from step {result.resumed_from}; {result.seconds:.1f} s, "
                  f"loop overhead {1000 * result.loop_overhead_s:.2f} ms/step)")
    console.print(f"losses: {result.root / 'losses.jsonl'}; curve: {result.root / 'loss.svg'}")
    console.print(f"checkpoint: {result.model} sha256 {result.sha256}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from harness.external import prepare_external_run
    from harness.provenance import resolve_device
    from harness.report.summary import write_run_report
    from harness.scoring.scorer import score_run
    from harness.store import RunStore

    registry = get_registry()
    console = _console()
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise SystemExit(f"harness: {run_dir} is not a folder")
    _check_metric_precision(args.metric_precision, args.device)
    # The run folder's lock, as `harness run` takes it: never score a folder a run is still writing.
    with RunStore(run_dir).lock(command="harness " + " ".join(sys.argv[1:])):
        prepare_external_run(run_dir, registry, args.dataset, args.protocol, args.data_root, args.method_name)
        with _Progress(console) as progress:
            scored = score_run(run_dir, registry, device=resolve_device(args.device), progress=progress,
                               strict=args.strict, metric_precision=args.metric_precision,
                               codec_roundtrip=_codec_flag(args))
        _print_results(console, scored, registry)
        report, site = write_run_report(run_dir, registry)
    _print_codec(console, run_dir)
    console.print(f"metrics: {run_dir / 'metrics.parquet'}")
    console.print(f"summary: {report}")
    console.print(f"report: {site}")
    return 1 if _print_problems(console, [], scored) else 0


def _human_size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _selected_weights(registry: Any, names: Sequence[str]) -> list[Any]:
    """Weight sources by name; a method's (or metric's) name stands for every source it declares."""
    from harness.weights import select

    expanded: list[str] = []
    for name in names:
        owner = registry.specs["methods"].get(name) or registry.specs["metrics"].get(name)
        if name not in registry.specs["weights"] and owner is not None and owner.weights:
            expanded += [w for w in owner.weights if w not in expanded]
        elif name not in expanded:
            expanded.append(name)
    try:
        return select(registry.specs["weights"], expanded)
    except KeyError as err:
        raise SystemExit(f"harness: {err.args[0]}") from None


def cmd_weights_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.weights import status, weights_dir

    registry = get_registry()
    console = _console()
    rows = status(_selected_weights(registry, args.names))
    users: dict[str, list[str]] = {}
    for kind in ("metrics", "methods"):
        for name, spec in registry.specs[kind].items():
            for w in spec.weights:
                users.setdefault(w, []).append(name)
    table = Table(title=f"weights in {weights_dir()}", title_justify="left")
    for col in ("source", "used by", "state", "size", "path"):
        table.add_column(col, justify="right" if col == "size" else "left", overflow="fold")
    colours = {"verified": "green", "recorded": "green", "unverified": "yellow", "missing": "red", "corrupt": "red"}
    for row in rows:
        state = f"[{colours[row.state]}]{row.state}[/]" + (f" ({row.detail})" if row.detail else "")
        table.add_row(row.source, ", ".join(users.get(row.source, [])) or "-", state, _human_size(row.size),
                      str(row.path))
    console.print(table)
    console.print("verified: matches the published checksum; recorded: matches the checksum recorded when the "
                  "harness fetched it; unverified: no checksum known")
    from harness.checkpoints import CHECKPOINTS_DIR, find_checkpoints

    found = find_checkpoints(weights_dir())
    if found:
        checkpoints = Table(title=f"method checkpoints in {weights_dir() / CHECKPOINTS_DIR}", title_justify="left")
        for col in ("method", "kind", "head model", "sha256", "path"):
            checkpoints.add_column(col, overflow="fold")
        for path, checkpoint, why in found:
            if checkpoint is None:
                checkpoints.add_row("-", f"[red]unusable[/red] ({why})", "-", "-", str(path))
            else:
                kind = "synthetic-demo stand-in" if checkpoint.synthetic_demo else "full"
                checkpoints.add_row(checkpoint.method, kind, checkpoint.head_model, checkpoint.sha256[:16],
                                    str(path))
        console.print(checkpoints)
    bad = [r for r in rows if not r.usable]
    if bad:
        names = sorted({r.source for r in bad})
        console.print(f"[red]{len(bad)} file(s) missing or corrupt.[/red] Fix: harness weights fetch {' '.join(names)}")
    return 1 if bad else 0


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from harness.weights import WeightsFetchError, fetch

    registry = get_registry()
    console = _console()
    specs = _selected_weights(registry, args.names)
    failed = 0
    for spec in specs:
        url = f"{args.mirror.rstrip('/')}/{spec.url.rsplit('/', 1)[-1]}" if args.mirror else None
        console.print(f"fetching {spec.name} from {url or spec.url}")
        try:
            for row in fetch(spec, url=url):
                console.print(f"  {row.state}: {row.path} ({_human_size(row.size)})")
        except WeightsFetchError as err:
            failed += 1
            console.print(f"[red]  failed:[/red] {err}")
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    import polars as pl

    from harness.scoring.statistics import NoSharedUnitsError, compare

    registry = get_registry()
    console = _console()
    frames = []
    for run_dir in (Path(args.run_a), Path(args.run_b)):
        path = run_dir / "metrics.parquet"
        if not path.is_file():
            raise SystemExit(f"harness: {path} does not exist; score the run first (harness score {run_dir})")
        try:
            frames.append(pl.read_parquet(path))
        except Exception as err:  # polars raises its own error types for a damaged file
            raise SystemExit(f"harness: {path} is not a readable Parquet table ({type(err).__name__}: {err}); "
                             f"score the run again (harness score {run_dir})") from None
    if args.kind:  # e.g. novel_view only, when a protocol mixes unit kinds
        frames = [f.filter(pl.col("kind") == args.kind) for f in frames]
    try:
        result = compare(frames[0], frames[1], n_boot=args.bootstrap, seed=args.seed,
                         variants=[args.variant] if args.variant else None)
    except NoSharedUnitsError as err:
        raise SystemExit(f"harness: cannot compare {args.run_a} and {args.run_b}: {err}") from None
    columns = ["metric", "variant", "pairs", "subjects", "mean A", "mean B", "A - B", "95% interval",
               "p (Wilcoxon)", "p (Holm)", "better"]
    rows = []
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for r in result.table.iter_rows(named=True):
        spec = registry.specs["metrics"].get(r["metric"])
        better = "-"
        if spec is not None and r["ci_low"] is not None and (r["ci_low"] > 0 or r["ci_high"] < 0):
            a_higher = r["diff"] > 0
            better = "A" if a_higher == (spec.direction == "higher") else "B"
        rows.append([spec.title if spec else r["metric"], r["variant"], str(r["n_pairs"]), str(r["subjects"]),
                     f"{r['mean_a']:.4f}",
                     f"{r['mean_b']:.4f}", f"{r['diff']:+.4f}", f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
                     fmt(r["p_wilcoxon"]), fmt(r["p_holm"]), better])
    from harness.listing import emit

    emit(console, f"A = {result.method_a} ({args.run_a})  vs  B = {result.method_b} ({args.run_b})", columns,
         [[c.replace("[", "\\[") if i == 7 else c for i, c in enumerate(row)] for row in rows], args.format,
         numeric=columns[2:10])
    for label, run_dir in (("A", args.run_a), ("B", args.run_b)):
        if _synthetic_demo_run(Path(run_dir)):
            console.print(f"{label} was predicted with a synthetic-demo stand-in model (procedural heads), not the "
                          "method's full-size weights")
    console.print("Paired on identical (unit, kind, subject, sequence, camera, frame); interval: paired bootstrap over "
                  f"subjects ({args.bootstrap} resamples, seed {args.seed}); Wilcoxon signed-rank on per-subject "
                  "mean differences, Holm-corrected across the rows; 'better' only where the interval excludes 0.")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        result.table.write_csv(out) if out.suffix == ".csv" else result.table.write_json(out)
        console.print(f"written: {out}")
    return 0


def _synthetic_demo_run(run_dir: Path) -> bool:
    from harness.store import RunStore

    return any(c.get("synthetic_demo") for c in RunStore(run_dir).recorded_checkpoints())


def cmd_export(args: argparse.Namespace) -> int:
    from harness.export import ExportError, export_run

    console = _console()
    try:
        result = export_run(Path(args.run_dir), Path(args.out), get_registry(), args.format)
    except ExportError as err:
        print(f"harness: cannot export {args.run_dir}: {err}", file=sys.stderr)
        return 2
    expected = len(result.written) + len(result.missing)
    console.print(f"{result.task} submission: {len(result.written)} of {expected} videos written into {result.out}",
                  markup=False)
    for item in result.missing:
        console.print(f"missing {item['video']}: {item['why']}", style="yellow", markup=False)
    if result.zip_path is not None:
        console.print(f"upload: {result.zip_path}" + (" (incomplete: the server expects every video)"
                                                      if result.missing else ""), markup=False)
    return 1 if result.missing else 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.leaderboard import load
    from harness.report.site import build_report

    paper = [e for e in load(Path(args.leaderboard)) if e["source"] == "paper"] if args.leaderboard else []
    index = build_report([Path(d) for d in args.run_dirs], Path(args.out), get_registry(),
                         Path(args.templates) if args.templates else None, paper)
    _console().print(f"report: {index}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.report.leaderboard import add, load
    from harness.report.site import build_report

    path = Path(args.file)
    if args.leaderboard_command == "add":
        entry, replaced = add(path, Path(args.run_dir))
        _console().print(f"{'replaced' if replaced else 'added'} {entry['method']} on {entry['dataset']}/"
                         f"{entry['protocol']} (run {entry['run']}) in {path}")
        return 0
    entries = load(path)
    run_dirs = [Path(e["run_dir"]) for e in entries if e["source"] == "measured"]
    missing = [str(d) for d in run_dirs if not (d / "metrics.parquet").exists()]
    if missing:
        raise SystemExit(f"harness: {path} cites run folders that are not here: {', '.join(missing)}")
    index = build_report(run_dirs, Path(args.out), get_registry(), Path(args.templates) if args.templates else None,
                         [e for e in entries if e["source"] == "paper"])
    _console().print(f"leaderboard: {index}")
    return 0


def _add_metric_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric-precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                        help="precision of the network metrics (LPIPS, DreamSim): fp32 (default, for published "
                             "numbers), tf32 (CUDA only) or bf16; recorded in run.json and shown in every report")


def build_parser() -> argparse.ArgumentParser:
    from harness import __version__

    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_run = sub.add_parser("run", help="run a method on a dataset protocol, score it, write its summary")
    p_run.add_argument("--method", required=True)
    p_run.add_argument("--dataset", required=True)
    p_run.add_argument("--protocol", help="protocol name of the dataset, or a protocol .yaml file")
    p_run.add_argument("--data-root", help="dataset folder (default: the dataset's environment variable)")
    p_run.add_argument("--runs-dir", default=str(default_runs_dir()), help="where run folders go (default: runs)")
    p_run.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="method config override")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p_run.add_argument("--executor", default="local",
                       help="where units run: local (default), workers, local-gpus, slurm (see `harness ls executors`)")
    p_run.add_argument("--workers", type=int, metavar="N",
                       help="N local worker processes (one torch thread each): --executor workers with workers=N")
    p_run.add_argument("--executor-config", action="append", default=[], metavar="KEY=VALUE",
                       help="executor option (slurm: partition, time, gpus, cpus, mem, array_parallelism, account, "
                            "qos, sbatch, units_per_task, cluster); over $HARNESS_HOME/config.yaml")
    p_run.add_argument("--score-on", choices=["driver", "slurm"], default="driver",
                       help="score in this process (default) or as its own SLURM job (with --executor slurm)")
    p_run.add_argument("--strict", action="store_true", help="a metric that cannot run (missing weights) is an error")
    p_run.add_argument("--codec-roundtrip", action="store_true", help=CODEC_HELP)
    _add_metric_precision(p_run)
    p_run.add_argument("--wait", action="store_true",
                       help="if another process is running in the same run folder, wait for it instead of exiting")
    p_run.set_defaults(func=cmd_run)

    p_synth = sub.add_parser("synth", help="generate (or finish) a synthetic head corpus for training")
    p_synth.add_argument("--out", required=True, help="corpus folder (empty, or a corpus of the same settings)")
    p_synth.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                         help="identities, expressions_per_identity, resolution, uv_resolution, camera_set "
                              "(rig|synshot|orbit), num_gaussians, shard_size, head_model, ...")
    p_synth.add_argument("--seed", type=int, default=0)
    p_synth.add_argument("--workers", type=int, default=0, help="processes (default: one per core)")
    p_synth.set_defaults(func=cmd_synth)

    p_train = sub.add_parser("train", help="train a method's networks (resumes the same command after a kill)")
    p_train.add_argument("method")
    p_train.add_argument("--data", required=True,
                         help="a corpus folder made by `harness synth`, or DATASET:SPLIT (e.g. ava256:train)")
    p_train.add_argument("--data-root", help="the dataset folder, for DATASET:SPLIT")
    p_train.add_argument("--runs-dir", default=str(default_runs_dir()))
    p_train.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--steps", type=int)
    p_train.add_argument("--device", default="cpu")
    p_train.add_argument("--checkpoint-every", type=int, default=50)
    p_train.add_argument("--full", action="store_true",
                         help="label the checkpoint a full model rather than a synthetic-demo stand-in")
    p_train.set_defaults(func=cmd_train)

    p_score = sub.add_parser("score", help="score a folder of predictions (made by harness or any other tool)")
    p_score.add_argument("run_dir")
    p_score.add_argument("--dataset", help="needed when the folder has no run.json")
    p_score.add_argument("--protocol", help="needed when the folder has no run.json")
    p_score.add_argument("--data-root")
    p_score.add_argument("--method-name", default="external", help="label for predictions made elsewhere")
    p_score.add_argument("--device", default="auto")
    p_score.add_argument("--strict", action="store_true", help="a metric that cannot run (missing weights) is an error")
    p_score.add_argument("--codec-roundtrip", action="store_true", help=CODEC_HELP)
    _add_metric_precision(p_score)
    p_score.set_defaults(func=cmd_score)

    p_ls = sub.add_parser("ls", help="list registered methods, datasets, metrics or executors")
    p_ls.add_argument("kind", choices=list(KINDS))
    p_ls.add_argument("--format", choices=FORMATS, default="table")
    p_ls.set_defaults(func=cmd_ls)

    p_data = sub.add_parser("datasets", help="check a dataset folder")
    data_sub = p_data.add_subparsers(dest="datasets_command", required=True)
    p_check = data_sub.add_parser("check", help="validate a folder: what it holds and every problem at once")
    p_check.add_argument("name", help="dataset name (see `harness ls datasets`)")
    p_check.add_argument("--data-root", help="the folder (default: flag > environment variable > config entry)")
    p_check.add_argument("--protocol", help="also check every view this protocol's units need")
    p_check.add_argument("--deep", action="store_true",
                         help="decode every frame of every file (slow); default: headers, sizes and file ends")
    p_check.set_defaults(func=cmd_datasets_check)

    p_compare = sub.add_parser("compare", help="paired comparison of two scored runs on the units they share")
    p_compare.add_argument("run_a")
    p_compare.add_argument("run_b")
    p_compare.add_argument("--variant", help="only this variant (masked or full); default: both")
    p_compare.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p_compare.add_argument("--seed", type=int, default=0)
    p_compare.add_argument("--out", help="also write the table to OUT (.csv or .json)")
    p_compare.add_argument("--format", choices=FORMATS, default="table")
    p_compare.add_argument("--kind", help="only units of this kind (novel_view, self_reenactment, ...)")
    p_compare.set_defaults(func=cmd_compare)

    p_weights = sub.add_parser("weights", help="show or fetch the weight files metrics and methods need")
    weights_sub = p_weights.add_subparsers(dest="weights_command", required=True)
    p_wstatus = weights_sub.add_parser("status", help="what is present, missing or corrupt, with sizes and paths")
    p_wstatus.add_argument("names", nargs="*", help="weight sources (default: all)")
    p_wstatus.set_defaults(func=cmd_weights_status)
    p_wfetch = weights_sub.add_parser("fetch", help="download weight sources from their official URLs and verify")
    p_wfetch.add_argument("names", nargs="*", help="weight sources (default: all)")
    p_wfetch.add_argument("--mirror", help="fetch each file from MIRROR/<file name> instead of its official URL")
    p_wfetch.set_defaults(func=cmd_weights_fetch)

    p_export = sub.add_parser("export", help="write a run's predictions in a benchmark's submission layout")
    p_export.add_argument("run_dir")
    p_export.add_argument("--out", required=True, help="a new or empty folder")
    p_export.add_argument("--format", choices=["nersemble-benchmark"], default="nersemble-benchmark")
    p_export.set_defaults(func=cmd_export)

    p_report = sub.add_parser("report", help="build the static HTML site (leaderboards, methods, galleries)")
    p_report.add_argument("run_dirs", nargs="+")
    p_report.add_argument("--out", required=True)
    p_report.add_argument("--templates", help="folder of templates overriding the defaults by name")
    p_report.add_argument("--leaderboard", help="also show the paper-reported rows of this leaderboard.yaml")
    p_report.set_defaults(func=cmd_report)

    p_board = sub.add_parser("leaderboard", help="build the leaderboard site from leaderboard.yaml, or add a run")
    p_board.add_argument("--file", default="leaderboard.yaml")
    p_board.add_argument("--out", default="reports/leaderboard")
    p_board.add_argument("--templates")
    board_sub = p_board.add_subparsers(dest="leaderboard_command")
    p_add = board_sub.add_parser("add", help="add a scored run as a measured row (with provenance)")
    p_add.add_argument("run_dir")
    p_board.set_defaults(func=cmd_leaderboard)

    p_plugins = sub.add_parser("plugins", help="show loaded plugins and those that failed")
    p_plugins.add_argument("--format", choices=FORMATS, default="table")
    p_plugins.set_defaults(func=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.api.method import MetricsUnavailableError, MissingWeightsError
    from harness.data.errors import DatasetError, ProtocolError
    from harness.errors import CheckpointError, CorpusError, TrainingError
    from harness.executors import ExecutorConfigError
    from harness.jsonio import RefusedFolderError
    from harness.report.errors import ReportInputError
    from harness.safepath import UnsafePathError
    from harness.store import RunFolderError

    try:
        return int(args.func(args) or 0)
    except (UnknownNameError, DatasetError, ProtocolError, MissingWeightsError, MetricsUnavailableError,
            UnsafePathError, RefusedFolderError, ReportInputError, CheckpointError, CorpusError, TrainingError,
            RunFolderError, ExecutorConfigError) as err:
        print(f"harness: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        print(f"harness: disk full while writing {err.filename or 'a file'}; nothing committed was lost (every "
              "file is written whole or not at all): free some space and run the same command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nharness: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
