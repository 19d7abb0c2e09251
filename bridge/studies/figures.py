"""PNG figures for the study and trace reports (matplotlib, Agg canvas, never pyplot).

Figures are built on `matplotlib.figure.Figure` with an Agg canvas, so nothing here touches
matplotlib's global backend (the Qt companion may live in the same process). Every time axis is in
seconds, with token frames (57.42 per second) on a secondary axis at the top.
"""

import io

import numpy as np

from .metrics import FRAME_RATE_HZ, MEL_HOP, N_COARSE_CODEBOOKS, N_MELS, SAMPLE_RATE

KEEP_COLOUR = "#d9d9d9"  # mask 0: prompt, kept
REGEN_COLOUR = "#d6604d"  # mask 1: regenerated
STILL_MASKED_COLOUR = "#252525"
WAITING_COLOUR = "#8c8c8c"  # fine cells during the coarse stage: masked, their stage not started
TRACE_LEGEND = "time (s)   — black: still masked, red: generated, light grey: kept, dark grey: waiting for c2f"


def _figure(width_in, height_in):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("studies and traces draw their figures with matplotlib: pip install matplotlib") from e
    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


# Time plots share one layout, so that a setting's mask and spectrogram line up in the report.
TIME_AXES_RECT = (0.06, 0.17, 0.85, 0.6)  # left, bottom, width, height (figure fractions)
SIDE_AXES_RECT = (0.925, 0.17, 0.012, 0.6)


def _time_axes(fig):
    return fig.add_axes(TIME_AXES_RECT), fig.add_axes(SIDE_AXES_RECT)


def _save(fig, path=None, tight: bool = True) -> bytes | None:
    """Write `fig` as PNG to `path`, or return the PNG bytes when `path` is None."""
    if tight:
        fig.tight_layout()
    if path is not None:
        fig.savefig(path, format="png")
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _frames_axis(ax):
    """A secondary x axis on top in token frames, for an axis in seconds."""
    top = ax.secondary_xaxis("top", functions=(lambda s: s * FRAME_RATE_HZ, lambda f: f / FRAME_RATE_HZ))
    top.set_xlabel(f"token frames ({FRAME_RATE_HZ:.2f} per second)", fontsize=8)
    top.tick_params(labelsize=7)
    return top


def _colormap(colours):
    from matplotlib.colors import ListedColormap

    return ListedColormap(colours)


def mask_image(mask, path, title: str):
    """The (C, T) 0/1 mask as codebooks x time: regenerated cells in red, kept cells in grey."""
    mask = np.asarray(mask)
    C, T = mask.shape
    fig = _figure(10, 2.6)
    ax, side = _time_axes(fig)
    image = ax.imshow(mask, origin="lower", aspect="auto", interpolation="nearest",
                      cmap=_colormap([KEEP_COLOUR, REGEN_COLOUR]), vmin=-0.5, vmax=1.5,
                      extent=(0, T / FRAME_RATE_HZ, -0.5, C - 0.5))
    ax.axhline(N_COARSE_CODEBOOKS - 0.5, color="black", linewidth=0.8)
    ax.set_yticks(range(0, C, 2 if C > 8 else 1))
    ax.set_ylabel("codebook", fontsize=8)
    ax.set_xlabel("time (s)   — line: coarse codebooks 0-3 below, fine 4-13 above", fontsize=8)
    ax.set_title(title, fontsize=9, pad=28)
    ax.tick_params(labelsize=7)
    _frames_axis(ax)
    legend = fig.colorbar(image, cax=side, ticks=[0, 1])
    legend.ax.set_yticklabels(["kept", "regen."], fontsize=7)
    return _save(fig, path, tight=False)


def spectrogram_image(log_mel, path, title: str, duration_s: float):
    """A (N_MELS, frames) log-mel spectrogram in dB, time in seconds (the distance's features)."""
    log_mel = np.asarray(log_mel)
    fig = _figure(10, 2.6)
    ax, side = _time_axes(fig)
    top_db = float(log_mel.max()) if log_mel.size else 0.0
    image = ax.imshow(log_mel, origin="lower", aspect="auto", interpolation="nearest", cmap="magma",
                      vmin=top_db - 80, vmax=top_db,
                      extent=(-MEL_HOP / SAMPLE_RATE / 2, (log_mel.shape[1] - 0.5) * MEL_HOP / SAMPLE_RATE,
                              -0.5, N_MELS - 0.5))
    ax.set_xlim(0, duration_s)
    ax.set_ylabel(f"mel band (of {N_MELS})", fontsize=8)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_title(title, fontsize=9, pad=28)
    ax.tick_params(labelsize=7)
    colorbar = fig.colorbar(image, cax=side)
    colorbar.set_label("dB", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    _frames_axis(ax)
    return _save(fig, path, tight=False)


def _setting_axis(ax, values, labels, numeric: bool, log: bool, xlabel: str):
    if numeric:
        x = np.asarray(values, dtype=float)
        if log:
            ax.set_xscale("log")
            ax.set_xticks(x)
            ax.set_xticklabels(labels)
            ax.minorticks_off()
    else:
        x = np.arange(len(values), dtype=float)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=20 if len(values) > 4 else 0)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    return x


def summary_tokens(rows, path, xlabel: str, numeric: bool, log: bool = False):
    """Fractions masked and changed (coarse codebooks and all 14) against the setting."""
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    x = _setting_axis(ax, [r["value"] for r in rows], [str(r["value"]) for r in rows], numeric, log, xlabel)
    for key, style, name in (("masked_coarse", "o--", "masked, codebooks 0-3"),
                             ("changed_coarse", "o-", "changed, codebooks 0-3"),
                             ("masked_all", "s--", "masked, all 14"),
                             ("changed_all", "s-", "changed, all 14")):
        ax.plot(x, [r[key] for r in rows], style, label=name, markersize=4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction of tokens", fontsize=8)
    ax.set_title("tokens masked and changed vs setting", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def summary_metric(rows, key: str, path, xlabel: str, ylabel: str, title: str, numeric: bool,
                   log: bool = False, baseline: float | None = None, baseline_label: str = ""):
    """One number per setting against the setting, with an optional horizontal baseline."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    x = _setting_axis(ax, [r["value"] for r in rows], [str(r["value"]) for r in rows], numeric, log, xlabel)
    ax.plot(x, [r[key] for r in rows], "o-", markersize=4)
    if baseline is not None and np.isfinite(baseline):
        ax.axhline(baseline, color="grey", linestyle=":", label=baseline_label)
        ax.legend(fontsize=7)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


# --- traces -----------------------------------------------------------------------------------------


def state_image(state):
    """(C, T) trace state codes -> RGB: 0 kept (light grey), 1 generated (red), 2 still masked (black),
    3 waiting for its stage (dark grey)."""
    from matplotlib.colors import to_rgb

    palette = np.array([to_rgb(c) for c in (KEEP_COLOUR, REGEN_COLOUR, STILL_MASKED_COLOUR, WAITING_COLOUR)])
    return palette[np.asarray(state)]


def trace_strip(states, labels, path, title: str):
    """Every step's state stacked top to bottom, one block per step; blocks may differ in height
    (the coarse steps show codebooks 0-3, the coarse-to-fine steps all 14)."""
    states = [np.asarray(s) for s in states]
    T = states[0].shape[-1]
    gap = np.full((1, T, 3), 1.0)
    blocks, centres, row = [], [], 0
    for state in states:
        blocks += [state_image(state)[::-1], gap]  # codebook 0 at the bottom of each block
        centres.append(row + state.shape[0] / 2)
        row += state.shape[0] + 1
    image = np.concatenate(blocks[:-1])
    fig = _figure(10, min(40.0, 1.4 + 0.045 * image.shape[0]))
    ax = fig.add_subplot()
    ax.imshow(image, aspect="auto", interpolation="nearest", extent=(0, T / FRAME_RATE_HZ, image.shape[0], 0))
    ax.set_yticks(centres)
    ax.set_yticklabels(labels, fontsize=6)
    ax.set_xlabel(TRACE_LEGEND, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    _frames_axis(ax)
    return _save(fig, path)


def trace_frame(state, title: str) -> bytes:
    """One step's (C, T) state as PNG bytes, for the animated view."""
    state = np.asarray(state)
    C, T = state.shape
    fig = _figure(10, 2.6)
    ax = fig.add_axes(TIME_AXES_RECT)
    ax.imshow(state_image(state), origin="lower", aspect="auto", interpolation="nearest",
              extent=(0, T / FRAME_RATE_HZ, -0.5, C - 0.5))
    ax.axhline(N_COARSE_CODEBOOKS - 0.5, color="white", linewidth=0.8)
    ax.set_ylabel("codebook", fontsize=8)
    ax.set_xlabel(TRACE_LEGEND, fontsize=8)
    ax.set_title(title, fontsize=9, pad=28)
    ax.tick_params(labelsize=7)
    _frames_axis(ax)
    return _save(fig, tight=False)


def trace_schedule(stages, path):
    """Masked cells after each step (every chunk), with the cosine schedule's prediction.

    `stages`: [(name, masked (S, K) counts, expected (S, K) counts)] for the variation shown.
    """
    fig = _figure(7, 3.2)
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, (name, masked, expected) in zip(axes, stages):
        steps = np.arange(1, masked.shape[0] + 1)
        for k in range(masked.shape[1]):
            ax.plot(steps, masked[:, k], "o", markersize=3, color=f"C{k % 10}",
                    label="recorded" if k == 0 else None)
            ax.plot(steps, expected[:, k], "-", linewidth=0.8, color=f"C{k % 10}",
                    label="floor(cos(pi/2 r) N0)" if k == 0 else None)
        ax.set_xticks(steps if len(steps) <= 12 else np.unique(np.linspace(1, len(steps), 12).round()))
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("cells still masked", fontsize=8)
        ax.set_title(f"{name} ({masked.shape[1]} chunk{'s' if masked.shape[1] != 1 else ''})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)
