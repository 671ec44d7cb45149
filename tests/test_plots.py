"""rnnkit.plots: valid PNG files (decoded here with zlib alone), the pixels that should be there, errors."""
import math
import os
import struct
import zlib

import numpy as np
import pytest

from rnnkit import _png, plots
from rnnkit._font import GLYPHS, text_mask
from rnnkit._png import Canvas, colormap, hex_rgb, write_png
from rnnkit.errors import DTypeError, InputError, ShapeError


def read_png(path):
    """Decode an 8-bit RGB, non-interlaced PNG, checking signature, chunk CRCs, IHDR and filter bytes."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds, idat = 8, [], b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            W, H, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, comp, filt, interlace) == (8, 2, 0, 0, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert pos == len(data) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8)
    assert rows.size == H * (1 + 3 * W)
    rows = rows.reshape(H, 1 + 3 * W)
    assert np.all(rows[:, 0] == 0), "only filter type 0 (None) is written"
    return rows[:, 1:].reshape(H, W, 3)


def has(img, color):
    """Mask of the pixels exactly of `color` ('#rrggbb' or an RGB array)."""
    rgb = hex_rgb(color) if isinstance(color, str) else np.asarray(color, dtype=np.uint8)
    return np.all(img == rgb, axis=-1)


# -- PNG, font, canvas ----------------------------------------------------------------------------
def test_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)   # (H, W, 3)
    path = write_png(tmp_path / "a.png", img)
    assert path == str(tmp_path / "a.png")
    np.testing.assert_array_equal(read_png(path), img)
    assert os.listdir(tmp_path) == ["a.png"]                 # no temporary file left behind


def test_png_opens_in_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    img = np.random.default_rng(1).integers(0, 256, size=(4, 9, 3), dtype=np.uint8)
    with Image.open(write_png(tmp_path / "b.png", img)) as im:
        assert im.mode == "RGB" and im.size == (9, 4)
        np.testing.assert_array_equal(np.asarray(im), img)


def test_font_glyphs():
    assert GLYPHS.shape == (95, 9, 5)
    assert not GLYPHS[0].any()                                                # space is blank
    assert all(GLYPHS[i].any() for i in range(1, 95))                         # every other glyph has ink
    assert len({g.tobytes() for g in GLYPHS}) == 95                           # no two glyphs alike
    assert text_mask("Ab", 1).shape == (9, 11) and text_mask("Ab", 2).shape == (18, 22)
    np.testing.assert_array_equal(text_mask("\u00e9"), text_mask("?"))        # outside ASCII -> '?'
    assert text_mask("").shape == (9, 0)


def test_text_draws_pixels_inside_its_box():
    c = Canvas(40, 120)
    x0, y0, x1, y1 = c.text(10, 5, "Loss 0.25", "#ff0000", scale=2)
    ink = has(c.img, "#ff0000")
    ys, xs = np.nonzero(ink)
    assert ink.sum() > 50 and (x0, y0) == (10, 5) and (x1, y1) == (10 + 2 * 53, 5 + 18)
    assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
    r = Canvas(80, 30)
    x0, y0, x1, y1 = r.text(15, 40, "abc", "#0000ff", anchor="cm", rotate=True)
    assert (x1 - x0, y1 - y0) == (9, 17) and has(r.img, "#0000ff").sum() > 10


def test_stroke_antialiased_and_dashed():
    c = Canvas(20, 100)
    c.stroke([5, 95], [10.5, 10.5], "#000000", width=2.0)
    assert has(c.img, "#000000")[:, 10:90].any(axis=0).all()                 # solid: every column inked
    mid = c.img[:, 50, 0]
    assert mid[10] == 0 and 0 < mid[9] < 255 and mid[5] == 255              # full core, soft edge
    d = Canvas(20, 100)
    d.stroke([5, 95], [10.5, 10.5], "#000000", width=2.0, dash=(6.0, 4.0))
    inked = (d.img[:, 10:90, 0] < 128).any(axis=0)
    assert 0.5 < inked.mean() < 0.9                                            # dashes of 6 (+ round caps) in 10


# -- ticks ----------------------------------------------------------------------------------------
def test_ticks_are_nice_and_labels_distinct():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = rng.integers(-9, 9)
        lo = rng.uniform(-1, 1) * 10.0 ** k
        hi = lo + 10.0 ** (k + rng.uniform(-5, 3))                            # span >= 1e-5 of |lo|
        for axis, length in (("x", 700), ("y", 400)):
            ticks, labels = plots._fit_ticks(lo, hi, length, axis)
            step = np.diff(ticks)[0] if len(ticks) > 1 else None
            eps = 1e-6 * (hi - lo)
            assert len(set(labels)) == len(labels) and np.all((ticks >= lo - eps) & (ticks <= hi + eps))
            if step is not None:
                m = step / 10.0 ** math.floor(math.log10(step) + 1e-9)
                assert min(abs(m - v) for v in (1, 2, 5, 10)) < 1e-4        # 1, 2 or 5 times 10^k
                assert all(abs(float(s) - t) <= step * 0.01 for s, t in zip(labels, ticks))
    assert plots._fit_ticks(0.0, 3.3, 400, "y")[1] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
    assert plots.tick_labels(np.array([1e-5, 1.2e-5]), 2e-6) == ["1.0e-5", "1.2e-5"]
    assert plots.decade_labels([-8, -2, 0, 3, 4]) == ["1e-8", "0.01", "1", "1000", "1e4"]
    assert plots.log_ticks(-8, 0, 9)[0].tolist() == list(range(-8, 1))
    assert plots.data_limits(np.array([2.0, 2.0]), 0.05) == (1.8, 2.2)


# -- line plots -----------------------------------------------------------------------------------
def test_line_plot_draws_each_series_colour(tmp_path):
    x = np.linspace(0, 6, 200)
    series = {"sin": (x, np.sin(x)), "cos": (x, np.cos(x)), "flat": (x[::25], np.full(8, 0.2))}
    out = plots.line_plot(tmp_path / "sin.png", series,
                          title="Waves", xlabel="t", ylabel="value", vlines=3.0, styles={"cos": "dashed"},
                          width=500, height=320)
    img = read_png(out)
    assert img.shape == (320, 500, 3)
    for color in plots.PALETTE[:3]:
        assert has(img, color).sum() > 40
    assert has(img, plots.INK).sum() > 200                                   # title, labels, tick labels


def test_line_plot_nan_gap_and_constant(tmp_path):
    y = np.array([1.0, 1, 1, 1, np.nan, np.nan, np.nan, 1, 1, 1, 1])          # constant, with a hole
    img = read_png(plots.line_plot(tmp_path / "gap.png", {"": y}, width=600, height=300))
    cols = np.flatnonzero(has(img, plots.PALETTE[0]).any(axis=0))
    assert np.diff(cols).max() > 100                                           # 4 of 10 units missing
    assert has(img, "#b0b0b0").sum() == 0                                      # one unnamed series: no legend
    img = read_png(plots.line_plot(tmp_path / "dot.png", {"": [np.nan, 2.0, np.nan]}))
    ys, xs = np.nonzero(has(img, plots.PALETTE[0]))
    assert len(xs) >= 12 and np.ptp(xs) <= 6 and np.ptp(ys) <= 6              # a lone point: one round dot


def test_log_axis_spans_decades(tmp_path):
    d = np.arange(1, 60)
    y = np.logspace(0, -8, len(d))
    y[5] = 0.0                                                                  # <= 0 is a gap on a log axis
    img = read_png(plots.line_plot(tmp_path / "log.png", {"grad": (d, y)}, logy=True, height=400))
    rows = np.flatnonzero(has(img, plots.PALETTE[0]).any(axis=1))
    assert rows.max() - rows.min() > 250                                       # the line crosses 8 decades
    with pytest.raises(InputError, match="positive"):
        plots.line_plot(tmp_path / "bad.png", {"g": [0.0, -1.0]}, logy=True)


def test_legend_avoids_the_curve(tmp_path):
    x = np.linspace(0, 1, 50)
    img = read_png(plots.line_plot(tmp_path / "diag.png", {"a": x, "b": x * 0.9}, width=400, height=300))
    ys, xs = np.nonzero(has(img, "#b0b0b0"))                                   # the legend's frame
    assert xs.mean() < 200 and ys.mean() < 150                                 # upper left, off the diagonal


def test_many_points_are_decimated_to_the_same_picture(tmp_path, monkeypatch):
    y = np.cumsum(np.random.default_rng(0).standard_normal(3000))
    fast = read_png(plots.line_plot(tmp_path / "fast.png", {"walk": y}, width=300, height=200))
    monkeypatch.setattr(_png, "decimate", lambda u, v: (u, v))
    slow = read_png(plots.line_plot(tmp_path / "slow.png", {"walk": y}, width=300, height=200))
    differ = np.abs(fast.astype(int) - slow.astype(int)).max(axis=-1) > 96
    assert differ.mean() < 0.01


def test_line_plot_errors(tmp_path):
    p = tmp_path / "e.png"
    cases = [
        (dict(series={}), InputError, "series"),
        (dict(series=[1, 2]), InputError, "series"),
        (dict(series={"a": []}), InputError, r"series\['a'\]"),
        (dict(series={"a": ([1, 2, 3], [1, 2])}), ShapeError, r"series\['a'\].*same length"),
        (dict(series={"a": np.ones((2, 3))}), ShapeError, r"series\['a'\]"),
        (dict(series={"a": ["x", "y"]}), DTypeError, r"series\['a'\]"),
        (dict(series={"a": [np.nan, np.inf]}), InputError, "finite"),
        (dict(series={"a": [1, 2]}, styles={"a": "wavy"}), InputError, r"styles\['a'\]"),
        (dict(series={"a": [1, 2]}, styles={"b": "dashed"}), InputError, "styles"),
        (dict(series={"a": [1, 2]}, vlines=[np.nan]), InputError, r"vlines\[0\]"),
        (dict(series={"a": [1, 2]}, width=10), InputError, "width"),
        (dict(series={"a": [1, 2]}, title=3), InputError, "title"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plots.line_plot(p, **kwargs)
    with pytest.raises(InputError, match="path"):
        plots.line_plot(tmp_path / "missing" / "e.png", {"a": [1, 2]})
    assert not p.exists()


# -- heatmaps -------------------------------------------------------------------------------------
def test_heatmap_corners_have_the_lut_colours(tmp_path):
    M = np.arange(20.0).reshape(4, 5)                                          # min at [0, 0], max at [-1, -1]
    img = read_png(plots.heatmap(tmp_path / "h.png", M, colorbar=False, width=400, height=300))
    lut = colormap("viridis")
    levels = np.rint(M / 19 * 255).astype(int)                                 # (4, 5)
    cells = np.any([has(img, lut[k]) for k in levels.ravel()], axis=0)         # every pixel of a cell colour
    ys, xs = np.nonzero(cells)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    assert cells[y0:y1 + 1, x0:x1 + 1].all()                                  # one solid block of cells
    assert abs((x1 - x0 + 1) / 5 - (y1 - y0 + 1) / 4) <= 1                     # square cells
    for (y, x), want in {(y0, x0): 0, (y1, x1): 255, (y0, x1): levels[0, -1], (y1, x0): levels[-1, 0]}.items():
        np.testing.assert_array_equal(img[y, x], lut[want])


def test_heatmap_labels_nan_and_colorbar(tmp_path):
    src, tgt = "the cat", "le chat"
    A = np.random.default_rng(0).random((len(tgt), len(src)))
    A[2, 3] = np.nan
    img = read_png(plots.heatmap(tmp_path / "att.png", A, title="Attention", xlabel="source", ylabel="target",
                                 xticklabels=list(src), yticklabels=list(tgt), cmap="magma", vmin=0, vmax=1))
    assert img.shape[0] <= 600 and img.shape[1] <= 800
    assert has(img, plots.NAN_RGB).sum() > 100 and has(img, plots.INK).sum() > 200
    lut = colormap("magma")
    assert has(img, lut[255]).sum() >= 1 and has(img, lut[0]).sum() >= 1     # the colour bar's ends
    words = ("a rather long list of words that cannot fit side by side " * 2).split()
    img = read_png(plots.heatmap(tmp_path / "w.png", np.ones((3, len(words))), xticklabels=words, cmap="coolwarm"))
    assert img.shape[1] <= 800 and has(img, plots.INK).sum() > 200


def test_heatmap_errors(tmp_path):
    p = tmp_path / "e.png"
    cases = [
        (dict(matrix=np.ones(3)), ShapeError, "matrix"),
        (dict(matrix=np.ones((0, 3))), ShapeError, "matrix"),
        (dict(matrix=np.array([["a"]])), DTypeError, "matrix"),
        (dict(matrix=np.full((2, 2), np.nan)), InputError, "matrix"),
        (dict(matrix=np.ones((2, 3)), xticklabels=["a", "b"]), ShapeError, "xticklabels"),
        (dict(matrix=np.ones((2, 3)), yticklabels=["a"]), ShapeError, "yticklabels"),
        (dict(matrix=np.ones((2, 3)), cmap="jet"), InputError, "cmap"),
        (dict(matrix=np.ones((2, 3)), vmin=1.0, vmax=0.0), InputError, "vmin"),
        (dict(matrix=np.ones((2, 3)), height=5), InputError, "height"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            plots.heatmap(p, **kwargs)
    assert not p.exists()
