"""PNG encoding, colour tables and a small RGB raster canvas for rnnkit's plots (NumPy + stdlib).

PNG file (ISO/IEC 15948), the plain 8-bit RGB kind::

    signature  89 50 4E 47 0D 0A 1A 0A
    chunk      length (uint32 big-endian) | type (4 ASCII bytes) | data | CRC-32 of type + data
    IHDR       width, height (uint32), bit depth 8, colour type 2 (RGB), compression 0, filter 0,
               interlace 0
    IDAT       zlib stream of the H scanlines, each a filter byte 0 (None) then W*3 bytes R G B ...
    IEND       empty

Colour tables: 256 entries, linear in RGB between evenly spaced anchors (17 samples of
matplotlib's viridis, magma and coolwarm maps, or black and white for gray).

Canvas: `img` is (H, W, 3) uint8, y down, x right; pixel (x, y) covers [x, x+1) x [y, y+1), so
its centre is (x + 1/2, y + 1/2). A stroke of width w walks the polyline in steps of 1/4 pixel,
marks the subpixel of each sample on a grid of 4 x 4 subpixels per pixel, dilates the marks by a
disc of radius w/2, and gives each pixel the coverage a = the fraction of its 16 subpixels marked
(anti-aliasing); the colour is blended in, img = (1 - a) img + a colour. Non-finite points break
the line (gaps), and a finite point between two gaps becomes a dot of diameter 3w; a dash pattern
(on, off) in pixels keeps the samples whose arc length s along the line has s mod (on + off) < on.
A polyline with more than 4 points per pixel column, x non-decreasing, is first cut to the first,
lowest, highest and last point of each column (the same picture, drawn in time proportional to
the width rather than to the number of points).
"""
import os
import struct
import zlib

import numpy as np

from ._checks import check_choice
from ._font import text_mask
from .io.safe import atomic_write_bytes

CMAPS = {   # 17 evenly spaced samples of each map, as RRGGBB
    "viridis": "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 3fbc73 "
               "5ec962 84d44b addc30 d8e219 fde725",
    "magma": "000004 0a0822 1d1147 36106b 51127c 6a1c81 832681 9c2e7f b73779 d0416f e75263 f56b5c "
             "fc8961 fea772 fec488 fde2a3 fcfdbf",
    "coolwarm": "3b4cc0 4e68d8 6282ea 779af7 8db0fe a3c2fe b9d0f9 ccd9ed dddcdc ecd3c5 f5c4ac f7b093 "
                "f4987a eb7d62 dd5f4b ca3b37 b40426",
    "gray": "000000 ffffff",
}
SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEP = 0.25          # pixels between stroke samples
SS = 4               # subsamples per pixel side for anti-aliasing


def _chunk(kind, data):
    """One PNG chunk: length, type, data, CRC-32(type + data)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(img):
    """The bytes of a PNG file holding img, an (H, W, 3) uint8 array."""
    H, W, _ = img.shape
    ihdr = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
    rows = np.zeros((H, 1 + 3 * W), dtype=np.uint8)                 # (H, 1 + 3W), filter byte 0
    rows[:, 1:] = np.ascontiguousarray(img, dtype=np.uint8).reshape(H, 3 * W)
    idat = zlib.compress(rows.tobytes(), 6)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_png(path, img):
    """Write img (H, W, 3) uint8 to path as a PNG, atomically; return os.fspath(path)."""
    atomic_write_bytes(path, encode_png(img))
    return os.fspath(path)


def hex_rgb(code):
    """'#rrggbb' -> np.array([r, g, b], uint8)."""
    return np.frombuffer(bytes.fromhex(code.lstrip("#")), dtype=np.uint8).copy()


def colormap(name):
    """The (256, 3) uint8 colour table of `name` (viridis, magma, coolwarm or gray)."""
    check_choice("cmap", name, tuple(CMAPS))
    anchors = np.array([list(bytes.fromhex(h)) for h in CMAPS[name].split()], dtype=float)  # (A, 3)
    t, at = np.linspace(0, 1, 256), np.linspace(0, 1, len(anchors))
    lut = np.stack([np.interp(t, at, anchors[:, c]) for c in range(3)], axis=1)   # (256, 3)
    return np.rint(lut).astype(np.uint8)


def decimate(u, v):
    """Keep the first, lowest, highest and last point per pixel column and finite run: same picture."""
    ok = np.isfinite(u) & np.isfinite(v)
    run, u1, v1 = np.cumsum(~ok)[ok], u[ok], v[ok]                      # a gap starts a new run
    if len(u1) < 2 or len(u1) <= 4 * (u1[-1] - u1[0] + 2) or np.any(np.diff(u1) < 0):
        return u, v
    col = np.floor(u1)
    s = np.flatnonzero(np.r_[True, (col[1:] != col[:-1]) | (run[1:] != run[:-1])])   # group starts
    e = np.r_[s[1:], len(u1)] - 1                                        # group ends
    gap = np.r_[run[s][1:] != run[s][:-1], False]                        # a gap follows the group
    c = col[s] + 0.5
    lo, hi = np.minimum.reduceat(v1, s), np.maximum.reduceat(v1, s)
    U = np.stack([u1[s], c, c, u1[e], np.where(gap, np.nan, u1[e])], axis=1)   # (groups, 5)
    V = np.stack([v1[s], lo, hi, v1[e], v1[e]], axis=1)                        # (groups, 5)
    return U.ravel(), V.ravel()


def polyline_samples(x, y, dash=None):
    """Points (N, 2) every STEP pixels along the finite runs of the polyline (x, y), dashed if asked,
    and the finite points (M, 2) that have no finite neighbour."""
    p = np.stack([x, y], axis=1).astype(np.float64)                # (n, 2)
    ok = np.isfinite(p).all(axis=1)
    seg = ok[:-1] & ok[1:]
    a, d = p[:-1][seg], (p[1:] - p[:-1])[seg]                      # (m, 2) start, direction
    L = np.hypot(d[:, 0], d[:, 1])                                 # (m,) segment lengths
    n = np.maximum(1, np.ceil(L / STEP)).astype(np.int64)
    k = np.repeat(np.arange(len(a)), n)                            # (N,) segment of each sample
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / n[k]
    pts = a[k] + t[:, None] * d[k]                                 # (N, 2)
    alone = ok & ~np.r_[False, seg] & ~np.r_[seg, False]
    if dash is None:
        return np.concatenate([pts, p[1:][seg]]), p[alone]
    s = (np.cumsum(L) - L)[k] + t * L[k]                           # arc length of each sample
    return pts[s % sum(dash) < dash[0]], p[alone]


class Canvas:
    """An (H, W, 3) uint8 image with the drawing operations a plot needs."""

    def __init__(self, height, width, background="#ffffff"):
        self.img = np.empty((height, width, 3), dtype=np.uint8)    # (H, W, 3)
        self.img[:] = hex_rgb(background)

    @property
    def shape(self):
        """(H, W)."""
        return self.img.shape[:2]

    def blend(self, alpha, color, y0=0, x0=0):
        """img = (1 - alpha) img + alpha colour over the block whose top-left corner is (x0, y0)."""
        H, W = self.shape
        h, w = alpha.shape
        ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + h, H), min(x0 + w, W)
        if ya >= yb or xa >= xb:
            return
        a = alpha[ya - y0:yb - y0, xa - x0:xb - x0, None].astype(np.float32)
        block = self.img[ya:yb, xa:xb]
        block[:] = np.rint((1 - a) * block + a * hex_rgb(color)).astype(np.uint8)

    def fill(self, x0, y0, x1, y1, color):
        """Fill the pixels [x0, x1) x [y0, y1) (clipped to the canvas)."""
        H, W = self.shape
        x0, x1 = max(int(x0), 0), min(int(x1), W)
        y0, y1 = max(int(y0), 0), min(int(y1), H)
        if x0 < x1 and y0 < y1:
            self.img[y0:y1, x0:x1] = hex_rgb(color)

    def frame(self, x0, y0, x1, y1, color):
        """A 1-pixel outline just inside [x0, x1) x [y0, y1)."""
        self.fill(x0, y0, x1, y0 + 1, color)
        self.fill(x0, y1 - 1, x1, y1, color)
        self.fill(x0, y0, x0 + 1, y1, color)
        self.fill(x1 - 1, y0, x1, y1, color)

    def stroke(self, x, y, color, width=1.5, dash=None, clip=None):
        """Draw the polyline through pixel coordinates (x, y) (lone points as dots); return its samples."""
        pts, dots = polyline_samples(*decimate(np.asarray(x, float), np.asarray(y, float)), dash)
        if clip is not None:
            x0, y0, x1, y1 = clip
            pts, dots = [p[(p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)]
                         for p in (pts, dots)]
        self.ink(pts, width / 2, color)
        self.ink(dots, 1.5 * width, color)
        return np.concatenate([pts, dots])

    def ink(self, pts, r, color):
        """Blend colour over every pixel within r of the points (N, 2), anti-aliased on 4 x 4 subpixels."""
        if len(pts) == 0:
            return
        R, k = r * SS, int(r * SS)                                     # radius in subpixels
        q = np.floor(pts * SS).astype(np.int64)                        # (N, 2) subpixel of each point
        lo, hi = (q.min(axis=0) - k) // SS * SS, (q.max(axis=0) + k) // SS * SS + SS
        hit = np.zeros((hi[1] - lo[1], hi[0] - lo[0]), dtype=bool)     # (SS*h, SS*w) subpixel grid
        hit[q[:, 1] - lo[1], q[:, 0] - lo[0]] = True
        ink = np.zeros_like(hit)
        for dy in range(-k, k + 1):                                    # dilate by a disc of radius R
            for dx in range(-k, k + 1):
                if dx * dx + dy * dy <= R * R:
                    ink |= np.roll(hit, (dy, dx), axis=(0, 1))
        h, w = ink.shape[0] // SS, ink.shape[1] // SS
        self.blend(ink.reshape(h, SS, w, SS).mean(axis=(1, 3)), color, y0=lo[1] // SS, x0=lo[0] // SS)

    def text(self, x, y, s, color="#222222", scale=1, anchor="lt", rotate=False):
        """Draw s with its box's anchor ([l|c|r][t|m|b]) at (x, y), turned 90° anticlockwise if rotate."""
        mask = text_mask(s, scale)
        if rotate:
            mask = np.rot90(mask)
        h, w = mask.shape
        x0 = x - {"l": 0, "c": w // 2, "r": w}[anchor[0]]
        y0 = y - {"t": 0, "m": h // 2, "b": h}[anchor[1]]
        self.blend(mask, color, y0=int(y0), x0=int(x0))
        return int(x0), int(y0), int(x0) + w, int(y0) + h

    def save(self, path):
        """Write the canvas as a PNG, atomically; return os.fspath(path)."""
        return write_png(path, self.img)
