"""The site's index and the paper-reported boards: paper rows reach the site on their own labelled boards."""

from __future__ import annotations

from pathlib import Path

from conftest import harness_cli

REPO = Path(__file__).resolve().parent.parent


def test_paper_rows_get_their_own_labelled_boards(tmp_path: Path) -> None:
    done = harness_cli(["leaderboard", "--file", str(REPO / "leaderboard.yaml"), "--out", str(tmp_path / "site")])
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Paper-reported" in index and 'href="boards/paper.nersemble.omega-table2.html"' in index
    assert ">Index</a>" not in index  # no link to the page itself
    board = (tmp_path / "site" / "boards" / "paper.nersemble.omega-table2.html").read_text()
    assert "not measured by this harness" in board and "OMEGA-Avatar, table 2" in board
    for method in ("PanoHead", "SphereHead", "GAGAvatar", "SOAP", "LAM", "OMEGA-Avatar"):
        assert f'<td class="name">{method}</td>' in board
    assert "23.2210" in board  # OMEGA-Avatar's PSNR on NeRSemble as printed
    assert (tmp_path / "site" / "boards" / "paper.ava256.omega-table2.html").is_file()


def test_an_image_chosen_for_several_reasons_is_listed_once() -> None:
    import polars as pl

    from harness.report.gallery import choose_images
    from harness.report.runs import RunData

    images = pl.DataFrame([{"unit": "u", "subject": "s", "sequence": "q", "camera": c, "frame": 0,
                            "prediction": f"{c}.png", "prediction_sha256": "", "ground_truth_sha256": "",
                            "masked_available": True} for c in ("a", "b")])
    metrics = pl.DataFrame([{"unit": "u", "camera": c, "frame": 0, "metric": m, "variant": "masked", "status": "ok",
                             "value": v} for m, values in (("psnr", (20.0, 30.0)), ("ssim", (0.5, 0.9)))
                            for c, v in zip(("a", "b"), values, strict=True)])
    data = RunData(Path("."), {"run_id": "r"}, metrics, images, [], {})
    picks = choose_images(data, "masked", {"psnr": "higher", "ssim": "higher"}, {"psnr": "PSNR", "ssim": "SSIM"})
    by_camera = {row["camera"]: reason for row, reason in picks}
    assert len(picks) == len(by_camera) == 2  # each image once
    assert by_camera["a"] == "fixed, worst PSNR, worst SSIM" and by_camera["b"] == "worst PSNR, worst SSIM"
