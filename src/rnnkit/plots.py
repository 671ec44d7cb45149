"""Pictures for rnnkit's command line, drawn with NumPy alone and written as PNG files.

    line_plot(path, series, ...)   curves y(x): loss per step, forecast and held-out truth,
                                   gradient norm |dL/dh_t| against distance (logy=True)
    heatmap(path, matrix, ...)     an (R, C) matrix as colours: attention weights (target x source
                                   tokens), gate activations or hidden states (time x units)

Axes: a value v maps linearly onto the plot box, u = u0 + (v - lo) / (hi - lo) * (u1 - u0); with
logy the y axis maps log10(v), and values <= 0 (like NaN and Inf) leave gaps in the curve. Linear
ticks sit at multiples of step = m * 10^k, m in {1, 2, 5}: the smallest step that keeps ticks
>= 40 px apart on y and >= 60 px (and label width + 20) on x. Log ticks sit at decades 10^k (every
2nd, 3rd, 5th ... when there are many), with fainter grid lines at 2..9 * 10^k when at most 6
decades show. The x axis is tight to the data, the y axis has 5% room above and below; a constant
series gets a range of +-10% (or +-1 around 0).

Heatmap colours: level = round(255 * clip((v - vmin) / (vmax - vmin), 0, 1)) indexes a 256-entry
table (viridis, magma, coolwarm or gray); NaN and Inf cells are light grey. Row 0 is at the top.
Cells are square when filling the box would make them at most 4 times longer one way than the
other, and the picture is then cropped to fit them; otherwise they fill the box.

Series colours: Okabe & Ito's colour-blind safe palette, in order. Every function writes its file
atomically (a temporary file, then os.replace) and returns os.fspath(path).
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from ._checks import check_array, check_choice, check_int, check_real
from ._font import text_size
from ._png import Canvas, colormap, hex_rgb
from .errors import DTypeError, InputError, ShapeError

PALETTE = ("#0072b2", "#d55e00", "#009e73", "#e69f00", "#cc79a7", "#56b4e9", "#000000")
DASHES = {"solid": None, "dashed": (7.0, 4.0), "dotted": (1.5, 3.0)}
INK, AXIS, GRID, MINOR, VLINE, NAN_RGB = "#222222", "#555555", "#e4e4e4", "#f2f2f2", "#888888", "#d9d9d9"
LINE_H = 9                       # height of scale-1 text in pixels
TICK, GAP, PAD = 4, 4, 10        # tick length, tick-to-label gap, outer padding (pixels)


# -- ticks ----------------------------------------------------------------------------------------
def nice_steps(span):
    """The steps m * 10^k, m in (1, 2, 5), in increasing order from about span / 1000."""
    k = math.floor(math.log10(span)) - 3
    while True:
        yield from (m * 10.0 ** k for m in (1, 2, 5))
        k += 1


def linear_ticks(lo, hi, step):
    """The multiples of step inside [lo, hi]."""
    return np.arange(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1) * step + 0.0


def tick_labels(ticks, step):
    """Labels with just enough digits for ticks `step` apart ('0.25', '1500', '2.5e-5', '1.5e6')."""
    big = float(np.max(np.abs(ticks))) if len(ticks) else 0.0
    if big >= 1e6 or step < 1e-3:
        p = max(0, math.floor(math.log10(max(big, step))) - math.floor(math.log10(step) + 1e-9))
        out = [f"{v:.{p}e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e") for v in ticks]
        return [s if v else "0" for s, v in zip(out, ticks)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{v:.{decimals}f}" for v in ticks]


def log_ticks(klo, khi, n):
    """Decade exponents to label in [klo, khi] (about n at most) and the minor-grid values."""
    ks = np.arange(klo, khi + 1)
    stride = next(s for s in (1, 2, 3, 5, 10, 20, 50, 100) if (khi - klo) / s <= max(n - 1, 1))
    minor = np.arange(2, 10)[None, :] * 10.0 ** ks[:-1, None]                  # (decades, 8)
    return ks[ks % stride == 0], minor.ravel() if khi - klo <= 6 else np.zeros(0)


def decade_labels(ks):
    """'0.01', '0.1', '1', '10', '100' for |k| <= 3, else '1e-8' style."""
    return [f"{10.0 ** k:g}" if abs(k) <= 3 else f"1e{k}" for k in ks]


def data_limits(v, pad):
    """(lo, hi) of the values v, widened by pad * range (a constant gets +-10%, or +-1 at 0)."""
    lo, hi = float(np.min(v)), float(np.max(v))
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi)):
        d = 0.1 * abs(lo) if lo else 1.0
        return lo - d, hi + d
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


# -- argument checks ------------------------------------------------------------------------------
def _check_common(title, xlabel, ylabel, width, height):
    """The three texts (str) and the size (ints) every plot takes."""
    for name, s in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(s, str):
            raise InputError(f"{name}: expected a str, got {type(s).__name__}")
    return check_int("width", width, 240, 10000), check_int("height", height, 180, 10000)


def _check_vector(name, v):
    """A non-empty 1-D numeric array, as float64."""
    v = check_array(name, v, ndim=1)
    if v.dtype.kind not in "biuf":
        raise DTypeError(f"{name}: expected numbers, got dtype {v.dtype.name}")
    if v.size == 0:
        raise InputError(f"{name}: expected at least one value, got an empty array")
    return v.astype(np.float64)


def _check_series(series, logy):
    """[(label, x, y)] from a dict label -> y or label -> (x, y); non-finite (and y <= 0 if logy) -> NaN."""
    if not isinstance(series, Mapping) or len(series) == 0:
        raise InputError(f"series: expected a non-empty dict label -> y or -> (x, y), got {series!r:.60}")
    curves = []
    for label, v in series.items():
        name = f"series[{label!r}]"
        if isinstance(v, tuple) and len(v) == 2 and np.ndim(v[0]) >= 1 and np.ndim(v[1]) >= 1:
            x, y = _check_vector(name + "[0] (x)", v[0]), _check_vector(name + "[1] (y)", v[1])
            if len(x) != len(y):
                raise ShapeError(f"{name}: expected x and y of the same length, got {len(x)} and {len(y)}")
        else:
            y = _check_vector(name, v)
            x = np.arange(len(y), dtype=np.float64)                             # (n,)
        y = np.where(np.isfinite(y) & ((y > 0) | (not logy)), y, np.nan)       # (n,)
        curves.append((str(label), np.where(np.isfinite(x), x, np.nan), y))
    return curves


def _check_styles(styles, labels):
    """One dash pattern (None = solid) per label, from a dict label -> 'solid' | 'dashed' | 'dotted'."""
    if styles is None:
        return [None] * len(labels)
    if not isinstance(styles, Mapping):
        raise InputError(f"styles: expected a dict label -> 'solid', 'dashed' or 'dotted', "
                         f"got {styles!r:.60}")
    unknown = [str(k) for k in styles if str(k) not in labels]
    if unknown:
        raise InputError(f"styles: labels {unknown} are not in series (labels: {labels})")
    named = {str(k): check_choice(f"styles[{k!r}]", v, tuple(DASHES)) for k, v in styles.items()}
    return [DASHES[named.get(label, "solid")] for label in labels]


def _check_vlines(vlines):
    """A list of finite x positions from None, a number or a sequence of numbers."""
    if vlines is None:
        return []
    if isinstance(vlines, numbers.Real):
        vlines = [vlines]
    return [check_real(f"vlines[{i}]", v) for i, v in enumerate(vlines)]


def _check_labels(name, labels, n):
    """None or a list of n str labels."""
    if labels is None:
        return None
    labels = [str(s) for s in labels]
    if len(labels) != n:
        what = "column" if name[0] == "x" else "row"
        raise ShapeError(f"{name}: expected {n} labels (one per matrix {what}), got {len(labels)}")
    return labels


# -- layout pieces shared by both plots -----------------------------------------------------------
def _top(title):
    """Pixels above the plot box: padding, and the scale-2 title if any."""
    return PAD + 6 + (2 * LINE_H + 12 if title else 0)


def _bottom(tick_h, xlabel):
    """Pixels below the plot box: ticks, their labels, the x label and padding."""
    return TICK + GAP + tick_h + (10 + LINE_H if xlabel else 0) + PAD + 2


def _left(tick_w, ylabel):
    """Pixels left of the plot box: padding, the rotated y label, tick labels and ticks."""
    return PAD + (LINE_H + 10 if ylabel else 0) + tick_w + GAP + TICK


def _names(canvas, box, title, xlabel, ylabel):
    """The title above the box, the x label at the bottom of the canvas, the y label at its left."""
    x0, y0, x1, y1 = box
    H, W = canvas.shape
    if title:
        half = text_size(title, 2)[1] // 2
        canvas.text(min(max((x0 + x1) // 2, half + PAD), W - half - PAD), PAD + 2, title, INK, 2, "ct")
    if xlabel:
        canvas.text((x0 + x1) // 2, H - PAD, xlabel, INK, anchor="cb")
    if ylabel:
        canvas.text(PAD, (y0 + y1) // 2, ylabel, INK, anchor="lm", rotate=True)


def _grid(canvas, box, us, axis, color):
    """1-pixel grid lines inside box at pixel positions us along the x axis (vertical lines) or y."""
    x0, y0, x1, y1 = box
    for u in np.floor(us).astype(int):
        if axis == "x":
            canvas.fill(u, y0 + 1, u + 1, y1, color)
        else:
            canvas.fill(x0 + 1, u, x1, u + 1, color)


def _ticks(canvas, box, us, labels, axis, rotate=False):
    """Tick marks and labels at pixel positions us below the box (axis 'x') or left of it ('y')."""
    x0, y0, x1, y1 = box
    for u, s in zip(np.floor(us).astype(int), labels):
        if axis == "x":
            canvas.fill(u, y1 + 1, u + 1, y1 + 1 + TICK, AXIS)
            canvas.text(u + 1, y1 + 1 + TICK + GAP, s, INK, anchor="ct", rotate=rotate)
        else:
            canvas.fill(x0 - TICK, u, x0, u + 1, AXIS)
            canvas.text(x0 - TICK - GAP, u + 1, s, INK, anchor="rm")


def _fit_ticks(lo, hi, length, axis):
    """The densest nice ticks in [lo, hi] whose labels stay apart along `length` pixels, and labels."""
    for step in nice_steps(hi - lo):
        ticks, gap = linear_ticks(lo, hi, step), step / (hi - lo) * length
        if gap < (60 if axis == "x" else 40) and len(ticks) > 1:
            continue
        labels = tick_labels(ticks, step)
        if axis == "y" or gap >= max(text_size(s)[1] for s in labels) + 20 or len(ticks) < 2:
            return ticks, labels


# -- line plots -----------------------------------------------------------------------------------
def _y_axis(curves, logy, length):
    """(lo, hi) of the y axis, tick values, labels and minor-grid values (all log10 when logy)."""
    y = np.concatenate([c[2][np.isfinite(c[2])] for c in curves])
    if y.size == 0:
        what = "positive finite (logy=True)" if logy else "finite"
        raise InputError(f"series: expected at least one {what} y value, got none")
    if not logy:
        lo, hi = data_limits(y, 0.05)
        return (lo, hi), *_fit_ticks(lo, hi, length, "y"), np.zeros(0)
    klo, khi = math.floor(math.log10(y.min())), math.ceil(math.log10(y.max()))
    klo, khi = (klo - 1, khi + 1) if klo == khi else (klo, khi)
    major, minor = log_ticks(klo, khi, max(3, int(length // 40) + 1))
    return (klo, khi), major.astype(float), decade_labels(major), np.log10(minor)


def _legend(canvas, box, entries, samples):
    """Draw the legend inside the corner of box that hides the fewest curve samples."""
    w = 8 + 24 + 6 + max(text_size(e[0])[1] for e in entries) + 8
    h = 2 * 6 + 14 * len(entries) - 5
    x0, y0, x1, y1 = box
    corners = [(x1 - 8 - w, y0 + 8), (x0 + 8, y0 + 8), (x0 + 8, y1 - 8 - h), (x1 - 8 - w, y1 - 8 - h)]
    p = np.concatenate(samples)                                                 # (N, 2)
    hidden = [np.sum((p[:, 0] >= bx) & (p[:, 0] < bx + w) & (p[:, 1] >= by) & (p[:, 1] < by + h))
              for bx, by in corners]
    bx, by = corners[int(np.argmin(hidden))]
    canvas.fill(bx, by, bx + w, by + h, "#ffffff")
    canvas.frame(bx, by, bx + w, by + h, "#b0b0b0")
    for i, (label, color, dash) in enumerate(entries):
        ty = by + 6 + 14 * i
        canvas.stroke([bx + 8, bx + 32], [ty + 4, ty + 4], color, width=2.0, dash=dash)
        canvas.text(bx + 38, ty, label, INK)


class _LineAxes:
    """The box [x0, x1] x [y0, y1] of a line plot, its data ranges and ticks; U, V map data to pixels."""

    def __init__(self, curves, vlines, logy, W, H, title, xlabel, ylabel):
        self.logy, self.y0, self.y1 = logy, _top(title), H - _bottom(LINE_H, xlabel)
        y_axis = _y_axis(curves, logy, self.y1 - self.y0)
        (self.ylo, self.yhi), self.yticks, self.ylabels, self.yminor = y_axis
        self.x0 = _left(max(text_size(s)[1] for s in self.ylabels), ylabel)
        x = np.concatenate([c[1][np.isfinite(c[1])] for c in curves] + [np.array(vlines)])
        if x.size == 0:
            raise InputError("series: expected at least one finite x value, got none")
        self.xlo, self.xhi = data_limits(x, 0.0)
        self.xticks, self.xlabels = _fit_ticks(self.xlo, self.xhi, W - self.x0 - 2 * PAD, "x")
        self.x1 = W - max(2 * PAD, text_size(self.xlabels[-1])[1] // 2 + PAD)
        self.box = (self.x0, self.y0, self.x1, self.y1)

    def U(self, x):
        """Pixel column of data x."""
        return self.x0 + 0.5 + (np.asarray(x, float) - self.xlo) / (self.xhi - self.xlo) * (self.x1 - self.x0)

    def V(self, y, exponent=False):
        """Pixel row of data y (of 10**y when exponent, on a log axis)."""
        y = np.asarray(y, float)
        t = np.log10(y) if self.logy and not exponent else y
        return self.y1 + 0.5 - (t - self.ylo) / (self.yhi - self.ylo) * (self.y1 - self.y0)

    def draw(self, canvas):
        """Grid lines and the ticks with their labels."""
        _grid(canvas, self.box, self.V(self.yminor, exponent=True), "y", MINOR)
        _grid(canvas, self.box, self.U(self.xticks), "x", GRID)
        _grid(canvas, self.box, self.V(self.yticks, exponent=True), "y", GRID)
        _ticks(canvas, self.box, self.U(self.xticks), self.xlabels, "x")
        _ticks(canvas, self.box, self.V(self.yticks, exponent=True), self.ylabels, "y")


def line_plot(path, series, title="", xlabel="", ylabel="", logy=False, width=800, height=500,
              vlines=None, styles=None):
    """Draw curves from a dict label -> y or label -> (x, y) (NaN = gap) as a PNG at path; return path."""
    curves = _check_series(series, bool(logy))
    labels = [c[0] for c in curves]
    dashes = _check_styles(styles, labels)
    vlines = _check_vlines(vlines)
    W, H = _check_common(title, xlabel, ylabel, width, height)
    ax, canvas = _LineAxes(curves, vlines, bool(logy), W, H, title, xlabel, ylabel), Canvas(H, W)
    ax.draw(canvas)
    for v in vlines:
        canvas.stroke(ax.U([v, v]), [ax.y0, ax.y1], VLINE, width=1.0, dash=(5.0, 4.0))
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(curves))]
    samples = [canvas.stroke(ax.U(x), ax.V(y), color, width=1.75, dash=dash, clip=ax.box)
               for (_, x, y), color, dash in zip(curves, colors, dashes)]
    canvas.frame(ax.x0, ax.y0, ax.x1 + 1, ax.y1 + 1, AXIS)
    if len(curves) > 1 or labels[0]:
        _legend(canvas, ax.box, list(zip(labels, colors, dashes)), samples)
    _names(canvas, ax.box, title, xlabel, ylabel)
    return canvas.save(path)


# -- heatmaps -------------------------------------------------------------------------------------
def _value_range(M, vmin, vmax):
    """(vmin, vmax) of the colour scale: the finite min and max of M unless given."""
    finite = M[np.isfinite(M)]
    if finite.size == 0:
        raise InputError(f"matrix: expected at least one finite value, got none (shape {M.shape})")
    lo = float(finite.min()) if vmin is None else check_real("vmin", vmin)
    hi = float(finite.max()) if vmax is None else check_real("vmax", vmax)
    if lo < hi:
        return lo, hi
    if vmin is None and vmax is None:
        return data_limits(finite, 0.0)
    raise InputError(f"vmin, vmax: expected vmin < vmax, got vmin={lo}, vmax={hi}")


def _index_ticks(n, length, labels, axis, rotate=False):
    """Indices and texts of the row or column labels that fit along `length` pixels."""
    if labels is None:
        need = text_size(str(n - 1))[1] + 20 if axis == "x" else 30
        step = int(round(next(s for s in nice_steps(n) if s >= 1 and s * length / n >= need)))
        idx = np.arange(0, n, step)                                             # (k,)
        return idx, [str(i) for i in idx]
    need = LINE_H + 3 if rotate else max(text_size(s)[1] for s in labels) + 6
    idx = np.arange(0, n, max(1, math.ceil(need * n / length)))                # (k,)
    return idx, [labels[i] for i in idx]


class _HeatAxes:
    """Where a heatmap's cells go, [x0, x1) x [y0, y1), and the canvas size W x H around them."""

    def __init__(self, R, C, W, H, title, xlabel, ylabel, xlabels, ylabels, cbar_labels):
        left = _left(max(text_size(s)[1] for s in (ylabels or [str(R - 1)])), ylabel) + 1
        right = PAD + 6
        if cbar_labels:
            right = PAD + 16 + 14 + TICK + GAP + max(text_size(s)[1] for s in cbar_labels)
        aw = max(W - left - right, 1)
        xwide = max(text_size(s)[1] for s in (xlabels or [str(C - 1)]))
        self.rotate = xlabels is not None and xwide + 6 > aw / C
        ah = max(H - _top(title) - _bottom(xwide if self.rotate else LINE_H, xlabel) - 1, 1)
        cw, ch = aw / C, ah / R
        if max(cw, ch) <= 4 * min(cw, ch):                                     # square cells
            cw = ch = min(cw, ch)
        pw, ph = max(1, int(cw * C)), max(1, int(ch * R))
        self.W, self.H = W - (aw - pw), H - (ah - ph)                          # cropped to the cells
        self.x0, self.y0 = left, _top(title) + 1
        self.x1, self.y1 = self.x0 + pw, self.y0 + ph
        self.box = (self.x0 - 1, self.y0 - 1, self.x1, self.y1)                 # the frame around them
        self.xticks = _index_ticks(C, pw, xlabels, "x", self.rotate)
        self.yticks = _index_ticks(R, ph, ylabels, "y")

    def draw(self, canvas, R, C):
        """The frame, ticks and tick labels of rows (left) and columns (bottom)."""
        canvas.frame(*self.box[:2], self.box[2] + 1, self.box[3] + 1, AXIS)
        (ci, cl), (ri, rl) = self.xticks, self.yticks
        _ticks(canvas, self.box, self.x0 + (ci + 0.5) * (self.x1 - self.x0) / C, cl, "x", self.rotate)
        _ticks(canvas, self.box, self.y0 + (ri + 0.5) * (self.y1 - self.y0) / R, rl, "y")


def _colorbar(canvas, ax, lut, vmin, vmax):
    """A vertical colour bar right of the cells, vmax at the top, with nice ticks."""
    x0, y0, y1 = ax.x1 + 16, ax.y0, ax.y1
    t = 1 - (np.arange(y1 - y0) + 0.5) / (y1 - y0)                          # (h,) value fraction per row
    canvas.img[y0:y1, x0:x0 + 14] = lut[np.rint(t * 255).astype(int)][:, None, :]
    canvas.frame(x0 - 1, y0 - 1, x0 + 15, y1 + 1, AXIS)
    ticks, labels = _fit_ticks(vmin, vmax, y1 - y0, "y")
    for v, s in zip(ticks, labels):
        u = int(math.floor(y1 - (v - vmin) / (vmax - vmin) * (y1 - y0)))
        canvas.fill(x0 + 14, u, x0 + 15 + TICK, u + 1, AXIS)
        canvas.text(x0 + 15 + TICK + GAP, u + 1, s, INK, anchor="lm")


def heatmap(path, matrix, title="", xlabel="", ylabel="", xticklabels=None, yticklabels=None,
            cmap="viridis", colorbar=True, vmin=None, vmax=None, width=800, height=600):
    """Draw an (R, C) matrix as coloured cells (row 0 at the top) as a PNG at path; return path."""
    M = check_array("matrix", matrix, ndim=2)
    if M.dtype.kind not in "biuf":
        raise DTypeError(f"matrix: expected numbers, got dtype {M.dtype.name}")
    if M.size == 0:
        raise ShapeError(f"matrix: expected at least one row and one column, got shape {M.shape}")
    (R, C), M = M.shape, M.astype(np.float64)
    xlabels = _check_labels("xticklabels", xticklabels, C)
    ylabels = _check_labels("yticklabels", yticklabels, R)
    W, H = _check_common(title, xlabel, ylabel, width, height)
    lut, (lo, hi) = colormap(cmap), _value_range(M, vmin, vmax)
    cbar = _fit_ticks(lo, hi, H // 2, "y")[1] if colorbar else None
    ax = _HeatAxes(R, C, W, H, title, xlabel, ylabel, xlabels, ylabels, cbar)
    canvas = Canvas(ax.H, ax.W)
    level = np.rint(np.clip((np.nan_to_num(M) - lo) / (hi - lo), 0, 1) * 255).astype(int)   # (R, C)
    rgb = np.where(np.isfinite(M)[..., None], lut[level], hex_rgb(NAN_RGB))                # (R, C, 3)
    rows = np.arange(ax.y1 - ax.y0) * R // (ax.y1 - ax.y0)                     # (ph,) matrix row of each
    cols = np.arange(ax.x1 - ax.x0) * C // (ax.x1 - ax.x0)                     # (pw,) matrix column of each
    canvas.img[ax.y0:ax.y1, ax.x0:ax.x1] = rgb[rows][:, cols]
    ax.draw(canvas, R, C)
    if colorbar:
        _colorbar(canvas, ax, lut, lo, hi)
    _names(canvas, ax.box, title, xlabel, ylabel)
    return canvas.save(path)
