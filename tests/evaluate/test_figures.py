"""Every figure of the report, checked at its saved size: titles and legends inside, tick labels apart."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from pedgm_kit.evaluate import curve_table, plot_efficiency, plot_metric_boxplots, plot_retest_areas  # noqa: E402
from pedgm_kit.metrics import METRICS  # noqa: E402
from pedgm_kit.preprocess import montage  # noqa: E402
from pedgm_kit.splits import plot_split_counts  # noqa: E402
from pedgm_kit.train import plot_learning_curve  # noqa: E402


def layout_problems(fig, dpi: int = 110) -> list[str]:
    """Texts (titles, labels, legends) outside the figure, and overlapping tick labels, at ``dpi``."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    frame = fig.bbox
    problems = []
    hidden = set()
    for ax in fig.axes:  # tick labels of ticks outside the view limits exist but are never drawn
        for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 <= tick.get_loc() <= hi + 1e-9:
                    hidden.update({id(tick.label1), id(tick.label2)})
    for text in fig.findobj(Text):
        if id(text) in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            problems.append(f"text outside the figure: {text.get_text()!r}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            problems.append("legend outside the figure")
    for ax in fig.axes:
        labels = [label for label in ax.get_xticklabels()
                  if label.get_visible() and label.get_text().strip() and id(label) not in hidden]
        boxes = [label.get_window_extent(renderer) for label in labels]
        for (a, la), (b, lb) in zip(zip(boxes, labels), zip(boxes[1:], labels[1:])):
            if a.overlaps(b):
                problems.append(f"x tick labels overlap: {la.get_text()!r} / {lb.get_text()!r}")
    return problems


@pytest.fixture
def tidy():
    rng = np.random.default_rng(0)
    rows = []
    models = ["challenge", "large", "pretrained_aug", "pretrained_noaug", "scratch_aug", "scratch_noaug",
              "pretrained_adapted"]
    for model in models:
        for scan in range(6):
            for metric in METRICS:
                value = rng.uniform(0.5, 1.0) if metric not in ("MSD", "HSD", "SHD", "SMD", "CC") else rng.uniform(0, 5)
                rows.append((model, f"sub-{scan}", f"p{scan}", "scan", pd.NA, metric, value))
                for k in range(3):
                    rows.append((model, f"sub-{scan}", f"p{scan}", "slice", k, metric, value + rng.normal(0, 0.05)))
    return pd.DataFrame(rows, columns=["model", "scan", "person", "level", "slice", "metric", "value"])


@pytest.mark.parametrize("level", ["scan", "slice"])
def test_boxplots(tidy, level):
    fig = plot_metric_boxplots(tidy, level=level, order=list(dict.fromkeys(tidy["model"])))
    assert layout_problems(fig) == []


@pytest.mark.parametrize("n_pairs", [1, 3, 4])
def test_retest_areas_figure(n_pairs):
    rows = []
    for p in range(n_pairs):
        for model in ("challenge", "large", "pretrained_adapted", "scratch_noaug"):
            for run in (1, 2):
                for k in range(12):
                    rows.append((model, f"p{p}", f"sub-{p}_run-1_T2starw", run, f"sub-{p}_run-{run}", k,
                                 14 + np.sin(k) + run * 0.3, True))
    areas = pd.DataFrame(rows, columns=["model", "person", "pair", "run", "scan", "slice", "gm_area_mm2", "labelled"])
    fig = plot_retest_areas(areas)
    assert layout_problems(fig) == []
    assert fig._suptitle.get_text().startswith("Test-retest")


def test_efficiency_figure():
    curve = pd.DataFrame([
        {"fold": f, "variant": v, "subset": s, "n_persons": n, "test_dice": d, "test_dice_05": d,
         "baseline_test_dice": 0.0, "baseline_test_dice_05": 0.0}
        for f in (1, 2, 3) for v in ("pretrained_adapted", "scratch_noaug")
        for s, n, d in (("1", 1, 0.3 + 0.05 * f), ("2", 2, 0.4), ("all", 4, 0.55))])
    title = ("Held-out Dice vs training persons (95% CI across folds) - SIMULATED: simulated contrast inversion")
    fig = plot_efficiency(curve_table(curve), title=title)  # notebook 05's title under demo_cv: wrapped, not cut
    assert layout_problems(fig, dpi=110) == []


def test_learning_curve_and_split_counts():
    rows = [{"epoch": 0, "loss": np.nan, "dice": np.nan, "val_loss": np.nan, "val_dice": 0.8}]
    rows += [{"epoch": e, "loss": -0.8, "dice": 0.8 + 0.01 * e, "val_loss": -0.8, "val_dice": 0.8 + 0.005 * e}
             for e in range(1, 12)]
    assert layout_problems(plot_learning_curve(rows, baseline_val_dice=0.8, title="fold-1/pretrained_adapted")) == []
    table = pd.DataFrame({"split": ["train", "train", "val", "test"], "person_id": ["a", "b", "c", "d"],
                          "scans": ["a1", "b1", "c1", "d1"], "n_scans": [1, 1, 1, 1], "n_slices": [20, 17, 15, 20],
                          "Site": ["UCL", "NWU", "Milan", "CEITEC"]})
    assert layout_problems(plot_split_counts(table, column="Site"), dpi=100) == []


def test_montage():
    images = np.random.default_rng(0).normal(size=(64, 64, 16))
    masks = (images > 1).astype(np.uint8)
    assert layout_problems(montage(images, masks, n_slices=16, title="first half: originals; second half: one "
                                                                    "augmentation of each, in the same order"), dpi=100) == []
