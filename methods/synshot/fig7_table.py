"""The Fig. 7 table: masked PSNR/SSIM by k for three runs, with the harness's paired bootstrap per k.

    python -m harness_methods.synshot.fig7_table RUN_SYNSHOT RUN_RANDOM RUN_GSFIT [--out table.md]

``harness compare`` pairs on (kind, subject, sequence, camera, frame); the units of a sweep with several k share
those keys, so a whole-run comparison mixes k. This splits both runs by unit (``...k1``, ``...k3``, ``...k8``) and
calls the same ``harness.scoring.statistics.compare`` (paired bootstrap over subjects, Wilcoxon, Holm) per k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from harness.scoring.statistics import compare


def _k(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("unit").str.extract(r"\.k(\d+)$").cast(pl.Int64).alias("k"))


def table(runs: dict[str, Path], n_boot: int = 2000) -> str:
    frames = {name: _k(pl.read_parquet(Path(root) / "metrics.parquet")) for name, root in runs.items()}
    names = list(runs)
    ks = sorted(set(frames[names[0]]["k"].drop_nulls().to_list()))
    lines = ["| k | metric | subjects | " + " | ".join(names) + " | " + " | ".join(
        f"{names[0]} - {other} [95% CI] (p Holm)" for other in names[1:]) + " |",
             "|---" * (3 + len(names) + len(names) - 1) + "|"]
    for k in ks:
        per = {n: f.filter((pl.col("k") == k) & (pl.col("variant") == "masked")) for n, f in frames.items()}
        results = {other: compare(per[names[0]], per[other], n_boot=n_boot, variants=["masked"]).table
                   for other in names[1:]}
        for metric in ("psnr", "ssim"):
            means = [per[n].filter((pl.col("metric") == metric) & (pl.col("status") == "ok"))["value"].mean()
                     for n in names]
            cells = []
            subjects = per[names[0]]["subject"].n_unique()
            for other in names[1:]:
                row = results[other].filter(pl.col("metric") == metric).row(0, named=True)
                p = row.get("p_holm")
                cells.append(f"{row['diff']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
                             + (f" (p={p:.3g})" if p is not None else ""))
            lines.append(f"| {k} | {metric} | {subjects} | " + " | ".join(f"{m:.3f}" for m in means) + " | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("synshot")
    parser.add_argument("random")
    parser.add_argument("gs_fit")
    parser.add_argument("--out")
    args = parser.parse_args()
    text = table({"synshot": Path(args.synshot), "random-init": Path(args.random), "gs-fit": Path(args.gs_fit)})
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
