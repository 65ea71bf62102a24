"""Figures of an evaluation: metric boxplots, the result summary, test-retest areas.

Slices are displayed as the viewer displays them (:func:`pedgm_kit.geometry.display_plane`):
working orientation LAS, anterior up, the subject's left on the right (radiological).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..datasets import DatasetIndex, mask_array
from ..exceptions import InputFileError, ParameterError, PedgmError
from ..geometry import Canonical, display_pixel_mm, display_plane
from ..io import load_image
from ..metrics import HIGHER_IS_BETTER, METRIC_LABELS, METRICS
from .models import prediction_path
from .scoring import slice_axis
from .tables import pivot

__all__ = [
    "save_figure",
    "mark_simulated",
    "plot_forest",
    "plot_metric_boxplots",
    "plot_person_dice",
    "plot_result_summary",
    "plot_retest_areas",
]


def save_figure(fig, evaluation_dir: str | os.PathLike, key: str, *, dpi: int = 110):
    """Save ``fig`` as notebook 05's figure ``key`` (:data:`pedgm_kit.layout.EVALUATION_FILES`), atomically.

    Returns the path written (e.g. ``save_figure(fig, eval_dir, "person_dice")``:
    ``<eval_dir>/person_dice.png``).
    """
    from .._utils import atomic_path
    from ..layout import evaluation_path

    path = evaluation_path(evaluation_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip("."))
    return path


def mark_simulated(fig, label: str):
    """Name a simulated domain shift in a figure's title (every figure made from simulated data)."""
    if label:
        title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
        fig.suptitle(f"SIMULATED ({label}) - {title}" if title else f"SIMULATED: {label}", fontsize=10,
                     color="firebrick")
    return fig


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_metric_boxplots(
    tidy: pd.DataFrame,
    *,
    level: str = "slice",
    metrics: Sequence[str] = METRICS,
    order: Sequence[str] | None = None,
    ncols: int = 5,
    points: bool = True,
):
    """Boxplots of every metric by model in one grid, mean and median marked.

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    level : {"slice", "scan"}, default "slice"
        Which rows to plot.
    metrics : sequence of str, default :data:`~pedgm_kit.metrics.METRICS`
        One panel each.
    order : sequence of str, optional
        Model order on the x axes; default order of appearance.
    ncols : int, default 5
        Panels per row.
    points : bool, default True
        Overlay the individual values (jittered, translucent).

    Notes
    -----
    So that one failed slice (e.g. a stray manual voxel 28 mm away) does not squash a panel, the
    y range stops 3 IQR beyond the quartiles (but includes at least the central 90% of the
    values) when values lie further out; those values are counted in a note at the panel edge
    ("3 above, max 28.6"). The boxes, means and medians
    always use every value.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot (safe with the Agg backend); save with ``fig.savefig(path)``.
        Boxes: quartiles, whiskers 1.5 IQR; black line = median, white diamond = mean; the
        number of values per box is printed under it.
    """
    import seaborn as sns
    from matplotlib.lines import Line2D

    if level not in ("scan", "slice"):
        raise ParameterError(f"level must be 'scan' or 'slice'; got {level!r}")
    sub = tidy[(tidy["level"] == level) & np.isfinite(tidy["value"].astype(float))]
    order = list(order) if order is not None else list(dict.fromkeys(tidy["model"]))
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig = _new_figure(3.3 * min(ncols, len(metrics)), 3.4 * nrows + 0.6)
    palette = dict(zip(order, sns.color_palette("colorblind", len(order))))
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(nrows, min(ncols, len(metrics)), k + 1)
        data = sub[sub["metric"] == metric]
        if len(data):
            with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib's deprecated `vert`: not ours to fix
                warnings.filterwarnings("ignore", message=".*vert.*", category=DeprecationWarning)
                sns.boxplot(
                    data=data, x="model", y="value", order=order, hue="model", hue_order=order, palette=palette,
                    legend=False, ax=ax, width=0.6, fliersize=0 if points else 3, linewidth=1.1,
                    showmeans=True, medianprops={"color": "black", "linewidth": 2.0},
                    meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black", "markersize": 6},
                )
            if points:
                sns.stripplot(data=data, x="model", y="value", order=order, color="0.25", size=2.5,
                              alpha=0.45 if len(data) > 60 else 0.7, jitter=0.18, ax=ax, zorder=3)
            _clip_far_outliers(ax, data, order)
            counts = data.groupby("model")["value"].size()
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels([f"{m}\nn={int(counts.get(m, 0))}" for m in order], fontsize=9)
        else:
            ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        arrow = "↑ better" if HIGHER_IS_BETTER.get(metric, True) else "↓ better"
        ax.set_title(f"{METRIC_LABELS.get(metric, metric)} {arrow}", fontsize=9.5)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(axis="y", alpha=0.3)
        if len(order) > 3:  # long model names: turned so they never overlap
            for label in ax.get_xticklabels():
                label.set_rotation(90 if len(order) > 4 else 30)
                label.set_ha("center" if len(order) > 4 else "right")
                label.set_fontsize(8)
    handles = [
        Line2D([], [], color="black", linewidth=2, label="median"),
        Line2D([], [], marker="D", linestyle="", markerfacecolor="white", markeredgecolor="black", label="mean"),
    ]
    fig.legend(handles=handles, loc="outside upper right", ncols=2, frameon=False)
    what = "slice (labelled slices only)" if level == "slice" else "scan (scored on labelled slices)"
    fig.suptitle(f"SCGM metrics per {what}, by model", fontsize=12)
    return fig


def _clip_far_outliers(ax, data: pd.DataFrame, order: Sequence[str], *, k: float = 3.0) -> None:
    """Limit the y range to ``k`` IQR beyond the quartiles and note the values left out of view."""
    v = data["value"].to_numpy(float)
    lows, highs = [], []
    for _, grp in data.groupby("model"):
        q1, q3 = np.quantile(grp["value"].to_numpy(float), [0.25, 0.75])
        iqr = max(q3 - q1, 1e-12)
        lows.append(q1 - k * iqr)
        highs.append(q3 + k * iqr)
    # never tighter than the central 90% of all values (an IQR of 0 must not hide real spread)
    q05, q95 = np.quantile(v, [0.05, 0.95])
    lo, hi = max(min(min(lows), q05), v.min()), min(max(max(highs), q95), v.max())
    means = data.groupby("model")["value"].mean().to_numpy(float)  # the mean markers stay in view
    lo, hi = min(lo, means.min()), max(hi, means.max())
    if lo <= v.min() and hi >= v.max():
        return
    pad = 0.06 * max(hi - lo, 1e-9)
    ax.set_ylim(lo - pad, hi + pad)
    for i, model in enumerate(order):
        mv = data.loc[data["model"] == model, "value"].to_numpy(float)
        above, below = mv[mv > hi + pad], mv[mv < lo - pad]
        if above.size:
            ax.annotate(f"{above.size} above\nmax {above.max():.3g}", (i, hi + pad), xytext=(0, -2),
                        textcoords="offset points", ha="center", va="top", fontsize=7, color="firebrick")
        if below.size:
            ax.annotate(f"{below.size} below\nmin {below.min():.3g}", (i, lo - pad), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, color="firebrick")


def plot_result_summary(
    tidy: pd.DataFrame,
    *,
    index: DatasetIndex,
    output_dir: str | os.PathLike,
    baseline: str,
    variant: str | None = None,
    slices: Sequence[tuple[str, int]] | None = None,
    n_slices: int = 3,
    half_width_mm: float = 12.0,
):
    """Image / baseline / best variant / manual for chosen slices, with Dice per panel.

    Like the original study's ``result_summary`` figure. Predictions are read from
    :func:`prediction_path` (as written by :func:`evaluate_models`).

    Parameters
    ----------
    tidy : pandas.DataFrame
        The table of :func:`evaluate_models`.
    index : DatasetIndex
        Index holding the scans (images and manual masks).
    output_dir : path-like
        The ``output_dir`` given to :func:`evaluate_models`.
    baseline : str
        Baseline model label.
    variant : str, optional
        Model shown beside the baseline; default the model with the highest mean scan-level DSC
        other than the baseline (none when there is only the baseline).
    slices : sequence of (scan_id, slice index), optional
        Rows of the figure. Default: ``n_slices`` scored slices spread over the slice-level Dice
        difference variant minus baseline (largest gain, median, largest loss); without a
        variant, over the baseline's Dice (best, median, worst).
    n_slices : int, default 3
        Rows when ``slices`` is not given.
    half_width_mm : float, default 12.0
        Half width (mm) of the square crop around the manual GM.

    Returns
    -------
    matplotlib.figure.Figure
        Rows = slices, columns = image, baseline, variant (if any), manual. Display: anterior up,
        patient's left on the right (radiological view, as fsleyes shows it). Masks drawn in colour over the image; the
        manual outline in dashed white on the prediction panels.
    """
    models = list(dict.fromkeys(tidy["model"]))
    if baseline not in models:
        raise ParameterError(f"baseline {baseline!r} is not a model of the table; models: {models}")
    if variant is None:
        scan_dsc = tidy[(tidy["level"] == "scan") & (tidy["metric"] == "DSC")]
        means = scan_dsc.groupby("model")["value"].mean().drop(baseline, errors="ignore")
        variant = str(means.idxmax()) if len(means) else None
    elif variant not in models:
        raise ParameterError(f"variant {variant!r} is not a model of the table; models: {models}")
    dsc = tidy[(tidy["level"] == "slice") & (tidy["metric"] == "DSC")]
    wide = pivot(dsc, ["scan", "slice"], columns="model")
    if slices is None:
        if variant is not None:
            score = (wide[variant] - wide[baseline]).dropna().sort_values(ascending=False)
        else:
            score = wide[baseline].dropna().sort_values(ascending=False)
        if score.empty:
            raise PedgmError("no scored slice to show in the result summary")
        picks = np.unique(np.round(np.linspace(0, len(score) - 1, min(n_slices, len(score)))).astype(int))
        slices = [tuple(score.index[i]) for i in picks]
    slices = [(str(s), int(k)) for s, k in slices]

    columns = ["image", baseline] + ([variant] if variant else []) + ["manual"]
    fig = _new_figure(2.6 * len(columns), 2.7 * len(slices) + 0.4)
    axes = fig.subplots(len(slices), len(columns), squeeze=False)
    colours = {baseline: "tab:orange", variant: "tab:blue", "manual": "tab:green"}
    by_id = {s.scan_id: s for s in index.scans}
    for r, (scan_id, k) in enumerate(slices):
        if scan_id not in by_id:
            raise ParameterError(f"scan {scan_id!r} is not a labelled scan of the index of {index.root}")
        scan = by_id[scan_id]
        img = load_image(scan.image)
        canon = Canonical(img)
        z = canon.working_index(k, axis=slice_axis(img))
        image, pixel_mm = display_plane(canon.data, z), display_pixel_mm(canon.spacing_mm)
        manual = display_plane(canon.to_working(mask_array(scan)), z) > 0
        preds = {}
        for m in columns[1:-1]:
            path = prediction_path(output_dir, m, scan_id)
            if not path.is_file():
                raise InputFileError(
                    f"No such file or no access: '{path}' (prediction of {m} for {scan_id}; run evaluate_models first)"
                )
            pred = load_image(path, what="prediction", allow_constant=True)
            preds[m] = display_plane(canon.to_working(np.asanyarray(pred.dataobj)), z) > 0
        # square crop around the manual GM (or the image centre when the slice has none)
        centre = np.argwhere(manual).mean(axis=0) if manual.any() else np.array(image.shape) / 2
        half = [max(4, int(round(half_width_mm / s))) for s in pixel_mm]
        box = tuple(slice(max(0, int(c) - h), int(c) + h + 1) for c, h in zip(centre, half))
        lo, hi = np.percentile(image[box], [1, 99.5])
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(image[box], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if name == "image":
                ax.set_title(f"{scan_id}\nslice {k}", fontsize=8)
            else:
                mask = manual if name == "manual" else preds[name]
                overlay = np.zeros(mask[box].shape + (4,))
                overlay[mask[box]] = _rgba(colours[name], 0.55)
                ax.imshow(overlay, interpolation="nearest")
                if name == "manual":
                    ax.set_title(f"manual\nGM {mask.sum() * pixel_mm[0] * pixel_mm[1]:.1f} mm²", fontsize=9)
                else:
                    ax.contour(manual[box].astype(float), levels=[0.5], colors="white", linewidths=0.8,
                               linestyles="dashed")
                    value = wide.loc[(scan_id, k), name] if (scan_id, k) in wide.index else math.nan
                    shown = f"{value:.3f}" if math.isfinite(value) else "n/a"
                    ax.set_title(f"{name}\nDice {shown}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Result summary (anterior up, patient's left on the right); dashed = manual outline", fontsize=10)
    return fig


def plot_retest_areas(areas: pd.DataFrame, *, only_labelled: bool = False):
    """GM area per slice of each scan (solid) and its rescan (dashed), one panel per pair.

    Parameters
    ----------
    areas : pandas.DataFrame
        The table of :func:`retest_areas`.
    only_labelled : bool, default False
        Plot only the slices labelled in the first run's manual mask.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per pair, one colour per model; x = slice index, y = GM area (mm²).
    """
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    data = areas[areas["labelled"]] if only_labelled else areas
    pairs = list(dict.fromkeys(data["pair"]))
    models = list(dict.fromkeys(data["model"]))
    ncols = min(3, max(1, len(pairs)))
    nrows = max(1, math.ceil(len(pairs) / ncols))
    width = max(4.2 * ncols, 7.5)  # room for the title and the legend with one pair too
    fig = _new_figure(width, 3.0 * nrows + 0.4 + 0.25 * math.ceil(2 * len(models) / max(1, int(width // 2.3))))
    palette = dict(zip(models, sns.color_palette("colorblind", len(models))))
    for i, pair in enumerate(pairs):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        sub = data[data["pair"] == pair]
        runs = sorted(sub["run"].unique())
        for model in models:
            for run, style in zip(runs, ("-", "--")):
                part = sub[(sub["model"] == model) & (sub["run"] == run)].set_index("slice")["gm_area_mm2"]
                if part.empty:
                    continue
                part = part.sort_index().reindex(range(int(part.index.min()), int(part.index.max()) + 1))
                ax.plot(part.index, part.to_numpy(float), style, marker=".", color=palette[model],
                        label=f"{model} run-{run}")  # NaN (slices left out) breaks the line
        ax.set_title(str(pair), fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("slice")
        ax.set_ylabel("GM area (mm²)")
        ax.grid(alpha=0.3)
    if not pairs:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no scan/rescan pair", ha="center", va="center", transform=ax.transAxes)
    else:
        handles, labels = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=max(1, min(len(labels), int(width // 2.3))),
                   frameon=False, fontsize=8)
    fig.suptitle("Test-retest: GM area per slice, run-1 (solid) vs run-2 (dashed)", fontsize=10)
    return fig


def plot_person_dice(tidy: pd.DataFrame, *, baseline: str, metric: str = "DSC", order: Sequence[str] | None = None):
    """Each person's mean ``metric`` under the baseline and under each variant, joined by person.

    One panel per variant: left the baseline (the reference), right the variant; one line per
    person (each person's scans averaged first, as in the statistics), green when the variant is
    higher, red when lower; the means as black diamonds. Persons are the unit of every test, so
    this is the picture of the paired comparison.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..stats import person_means

    models = list(order) if order is not None else list(dict.fromkeys(tidy["model"]))
    if baseline not in models:
        raise ParameterError(f"baseline {baseline!r} is not a model of the table; models: {models}")
    variants = [m for m in models if m != baseline] or [baseline]
    ncols = min(4, len(variants))
    nrows = math.ceil(len(variants) / ncols)
    fig = _new_figure(max(2.9 * ncols, 4.5), 3.3 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    up = HIGHER_IS_BETTER.get(metric, True)
    for k, variant in enumerate(variants):
        ax = axes[k // ncols, k % ncols]
        means = person_means(tidy, metric=metric, models=list(dict.fromkeys([baseline, variant])))
        for person, row in means.iterrows():
            a, b = float(row[baseline]), float(row[variant])
            colour = "0.5" if a == b else ("tab:green" if (b > a) == up else "tab:red")
            ax.plot([0, 1], [a, b], "-o", color=colour, markersize=4, linewidth=1.2, alpha=0.8)
        if len(means):
            ax.plot([0, 1], [means[baseline].mean(), means[variant].mean()], "D--", color="black", markersize=7,
                    markerfacecolor="white", linewidth=1.0, label="mean", zorder=5)
        ax.set_xticks([0, 1])
        ax.set_xticklabels([f"{baseline}\n(reference)", variant], fontsize=8)
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(f"{variant} vs {baseline}\n{len(means)} persons", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} per person")
    for k in range(len(variants), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    fig.suptitle(f"{metric} per person (a person's scans averaged)\nlines join one person; "
                 f"green: variant {'higher' if up else 'lower'} than the baseline", fontsize=9)
    return fig


def plot_forest(groups: pd.DataFrame, *, title: str = ""):
    """Forest plot of :func:`pedgm_kit.stats.group_table`: one row per (covariate group, model).

    Each row: the mean with its interval where the measured rule allows one (otherwise the point
    alone, hollow), and ``n = persons`` at the right. Rows of one group are adjacent, models in a
    fixed colour.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import seaborn as sns

    rows = groups.reset_index(drop=True)
    fig = _new_figure(7.5, 0.32 * max(len(rows), 3) + 1.3)
    ax = fig.add_subplot(1, 1, 1)
    models = list(dict.fromkeys(rows["model"])) if len(rows) else []
    palette = dict(zip(models, sns.color_palette("colorblind", max(1, len(models)))))
    labels = []
    for i, row in rows.iterrows():
        y = len(rows) - 1 - i
        colour = palette[row["model"]]
        has_ci = math.isfinite(float(row["ci_low"])) and math.isfinite(float(row["ci_high"]))
        if has_ci:
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=colour, linewidth=2)
        ax.plot([row["mean"]], [y], "o", color=colour, markerfacecolor=colour if has_ci else "white", markersize=6)
        labels.append(f"{row['covariate']} = {row['group']} · {row['model']}")
        ax.annotate(f"n = {int(row['n_persons'])}", (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(rows) - 1, -1, -1) if len(rows) else [])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("mean per-person Dice (line: 95% interval where the measured rule allows one; hollow: none)",
                  fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    if not len(rows):
        ax.text(0.5, 0.5, "no covariate groups", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title or "Dice per group, n persons per row", fontsize=10)
    return fig


def _rgba(name: str, alpha: float) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    r, g, b, _ = to_rgba(name)
    return (r, g, b, alpha)
