"""The simulated specimen: a deterministic 3D world of cultured cells, in stage micrometres.

The world is a field of adherent cells on a coverslip (its surface at z = -0.8 um), each labelled
with four fluorophores, one per channel:

0. nuclei (a DAPI-like DNA stain): ellipsoids with chromatin texture and dark nucleoli;
1. microtubules: curved filaments growing from the centrosome, arching over the nucleus;
2. actin and membrane: straight basal stress fibres, the cell's top and bottom membranes and its edge;
3. vesicles: diffraction-limited puncta scattered through the cytoplasm.

Everything is generated from the seed and the position of a cell on a coarse lattice, so any field of
view, at any pixel size and focus, is rendered from the same objects: overlapping tiles agree, and a
z-stack sweeps through the cells. A frame is rendered through the confocal PSF (a Gaussian, lateral
sigma 0.1 um, axial sigma 0.45 um) on a grid of fixed chunks, and chunks are cached per channel,
pixel size and focus, because a microscope revisits the same planes over and over.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.special import expit

FLUOROPHORES = ("nuclei", "microtubules", "actin+membrane", "vesicles")
PSF_SIGMA_XY = 0.1  # um
PSF_SIGMA_Z = 0.45  # um
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)
COVERSLIP_Z = -0.8  # um
BACKGROUND = 0.01  # autofluorescence, everywhere, in every channel
_LAMELLA = 1.2  # um: thickness of the flat rim of a cell
_PITCH = 45.0  # um between cells (a cell sits near the centre of each lattice square)
_STEP = 0.1  # um between the points that draw a filament
_TEXTURE_RES = 0.1  # um per texel of the chromatin texture
_CHUNK = 256  # pixels on a side of a cached chunk
_CHUNKS_CACHED = 128  # 32 MB


@dataclass(frozen=True)
class _Cell:
    """One cell. Coordinates other than cx, cy are relative to the cell's centre (um)."""

    cx: float
    cy: float
    radius: float
    shape: np.ndarray  # (2, 3): amplitude and phase of outline harmonics of order 2, 3, 4
    reach: float  # no part of the cell lies farther than this from its centre
    height: float  # top of the cell above the coverslip, at its centre
    nucleus: tuple[float, ...]  # dx, dy, semi-axis a, semi-axis b, angle, z centre, half height
    texture: np.ndarray  # (2, n, n) chromatin texture, two layers blended along z
    texture_origin: tuple[float, float]  # dx, dy of texel [0, 0]
    points: dict[int, np.ndarray]  # channel -> (N, 4) float32: dx, dy, z, weight

    def edge(self, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance of dx, dy from the centre, and of the cell edge in the same direction."""
        d = np.sqrt(dx * dx + dy * dy)
        c, s = dx / (d + 1e-9), dy / (d + 1e-9)
        ck, sk, r = c, s, np.ones_like(d)
        for amp, phase in self.shape.T.tolist():  # cos(k theta + phase) by angle addition
            ck, sk = ck * c - sk * s, sk * c + ck * s
            r = r + amp * (math.cos(phase) * ck - math.sin(phase) * sk)
        return d, self.radius * r

    def top(self, rho: np.ndarray) -> np.ndarray:
        """Height of the apical membrane: a thin lamella at the edge, a dome over the nucleus."""
        dome = np.clip(1 - rho**2, 0, 1) ** 2
        return COVERSLIP_Z + _LAMELLA + (self.height - _LAMELLA) * dome

    def nucleus_half(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Half the nucleus' thickness above dx, dy (0 outside the nucleus)."""
        nx, ny, a, b, angle, _, c = self.nucleus
        u = (dx - nx) * math.cos(angle) + (dy - ny) * math.sin(angle)
        v = (dy - ny) * math.cos(angle) - (dx - nx) * math.sin(angle)
        return c * np.sqrt(np.clip(1 - (u / a) ** 2 - (v / b) ** 2, 0, 1))

    def nucleus_top(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """Height of the nucleus' top above dx, dy (minus infinity outside the nucleus)."""
        half = self.nucleus_half(dx, dy)
        return np.where(half > 0, self.nucleus[5] + half, -np.inf)


def _sheet(dz: FloatOrArray) -> FloatOrArray:
    """Axial response to a thin sheet at distance dz from the focus (1 in focus)."""
    return np.exp(-0.5 * (dz / PSF_SIGMA_Z) ** 2)


def _slab(bottom: np.ndarray | float, top: np.ndarray | float, z: float) -> np.ndarray:
    """Axial response to a uniform layer from bottom to top (1 deep inside a thick layer)."""
    return _phi((top - z) / PSF_SIGMA_Z) - _phi((bottom - z) / PSF_SIGMA_Z)


def _phi(x: np.ndarray | float) -> np.ndarray:
    """The standard normal CDF, to 3e-4 (the tanh form is several times faster than erf)."""
    return 0.5 + 0.5 * np.tanh(0.7978846 * (x + 0.044715 * x * x * x))


@lru_cache(maxsize=256)
def _cell(seed: int, gx: int, gy: int) -> _Cell | None:
    """The cell of lattice square gx, gy (or None: some squares are empty)."""
    rng = np.random.default_rng([seed, gx % 2**32, gy % 2**32])
    if rng.random() > 0.85:
        return None
    cx, cy = (np.array([gx, gy]) + 0.5 + rng.uniform(-0.2, 0.2, 2)) * _PITCH
    radius = rng.uniform(14, 20)
    shape = np.array([rng.uniform(0, 0.08, 3), rng.uniform(0, 2 * np.pi, 3)])
    a, b = sorted(rng.uniform(5, 8, 2), reverse=True)
    half_height = rng.uniform(2.2, 2.8)
    nz = COVERSLIP_Z + half_height + 0.4
    offset = rng.uniform(0, 0.12 * radius) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    nucleus = (offset.real, offset.imag, a, b, rng.uniform(0, np.pi), nz, half_height)
    texture, origin = _chromatin(rng, nucleus)
    cell = _Cell(
        cx=float(cx),
        cy=float(cy),
        radius=radius,
        shape=shape,
        reach=radius * (1 + shape[0].sum()) + 1.0,
        height=nz + half_height + rng.uniform(0.8, 1.5) - COVERSLIP_Z,
        nucleus=tuple(float(v) for v in nucleus),
        texture=texture,
        texture_origin=origin,
        points={},
    )
    cell.points[1] = _microtubules(rng, cell)
    cell.points[2] = _stress_fibres(rng, cell)
    cell.points[3] = _vesicles(rng, cell)
    return cell


def _chromatin(rng: np.random.Generator, nucleus: tuple) -> tuple[np.ndarray, tuple[float, float]]:
    """Two layers of chromatin texture: fine speckle, coarse domains, darker nucleoli."""
    nx, ny, a, *_ = nucleus
    n = int(2 * a / _TEXTURE_RES) + 8
    origin = (nx - n / 2 * _TEXTURE_RES, ny - n / 2 * _TEXTURE_RES)
    fine = gaussian_filter(rng.standard_normal((2, n, n)), (0, 2.5, 2.5))
    coarse = gaussian_filter(rng.standard_normal((2, n, n)), (0, 12, 12))
    tex = 1 + 0.3 * fine / fine.std() + 0.2 * coarse / coarse.std()
    yy, xx = np.mgrid[0:n, 0:n] * _TEXTURE_RES
    for _ in range(rng.integers(1, 4)):
        px, py = rng.uniform(0.3, 0.7, 2) * n * _TEXTURE_RES
        r = rng.uniform(0.8, 1.6)
        tex *= 1 - 0.65 * expit((r**2 - (xx - px) ** 2 - (yy - py) ** 2) / 0.3)
    return np.clip(tex, 0.1, None).astype(np.float32), origin


def _points(*columns: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Stack the kept entries of dx, dy, z, weight into an (N, 4) float32 array."""
    return np.stack([np.broadcast_to(c, keep.shape)[keep] for c in columns], 1).astype(np.float32)


def _microtubules(rng: np.random.Generator, cell: _Cell) -> np.ndarray:
    """Curved filaments, many from the centrosome beside the nucleus, growing towards the edge."""
    n, steps = int(rng.integers(60, 90)), int(2.5 * cell.radius / _STEP)
    nx, ny, a, *_ = cell.nucleus
    side = rng.uniform(0, 2 * np.pi)
    start = np.full(n, complex(nx + (a + 0.8) * np.cos(side), ny + (a + 0.8) * np.sin(side)))
    free = rng.random(n) > 0.4  # the rest start anywhere in the cytoplasm
    where = rng.uniform(0, 2 * np.pi, n)
    start[free] = (0.3 + 0.5 * rng.random(free.sum())) * cell.radius * np.exp(1j * where[free])
    bend = rng.normal(0, 0.004, (n, 1)) + rng.normal(0, 0.02, (n, steps))
    theta = rng.uniform(0, 2 * np.pi, (n, 1)) + np.cumsum(bend, axis=1)
    x = start.real[:, None] + np.cumsum(_STEP * np.cos(theta), axis=1)
    y = start.imag[:, None] + np.cumsum(_STEP * np.sin(theta), axis=1)
    d, edge = cell.edge(x, y)
    length = rng.uniform(0.4, 1.0, (n, 1)) * steps
    keep = np.cumprod(d < 0.97 * edge, axis=1).astype(bool) & (np.arange(steps) < length)
    base = COVERSLIP_Z + 0.35 + rng.normal(0, 0.15, (n, 1))
    z = base + 0.3 * (cell.top(d / edge) - COVERSLIP_Z - 0.35)
    z = np.maximum(np.maximum(z, COVERSLIP_Z + 0.1), cell.nucleus_top(x, y) + 0.25)
    weight = 0.25 * _STEP * rng.uniform(0.8, 1.2, (n, 1))
    return _points(x, y, z, weight, keep=keep)


def _stress_fibres(rng: np.random.Generator, cell: _Cell) -> np.ndarray:
    """Straight actin bundles along one dominant direction, on the coverslip."""
    n = int(rng.integers(10, 22))
    direction = rng.uniform(0, np.pi) + rng.normal(0, 0.15, (n, 1))
    through = rng.uniform(-0.6, 0.6, (n, 2)) * cell.radius
    t = np.arange(-2 * cell.radius, 2 * cell.radius, _STEP)
    x: np.ndarray = through[:, :1] + t * np.cos(direction)
    y = through[:, 1:] + t * np.sin(direction)
    d, edge = cell.edge(x, y)
    z = COVERSLIP_Z + 0.25 + rng.normal(0, 0.1, x.shape)
    weight = 0.25 * _STEP * rng.lognormal(0, 0.4, (n, 1))
    return _points(x, y, z, weight, keep=d < 0.9 * edge)


def _vesicles(rng: np.random.Generator, cell: _Cell) -> np.ndarray:
    """Puncta through the cytoplasm, denser near the nucleus, never inside it."""
    n = int(rng.integers(150, 350))
    angle = rng.uniform(0, 2 * np.pi, n)
    rho = 0.92 * rng.random(n) ** 0.8
    _, edge = cell.edge(np.cos(angle), np.sin(angle))
    x, y = rho * edge * np.cos(angle), rho * edge * np.sin(angle)
    z = COVERSLIP_Z + 0.3 + rng.random(n) * np.maximum(cell.top(rho) - COVERSLIP_Z - 0.6, 0)
    weight = 0.063 * rng.lognormal(0, 0.5, n)
    return _points(x, y, z, weight, keep=z > cell.nucleus_top(x, y))


def _draw_cell(
    cell: _Cell, channel: int, raster: np.ndarray, x0: float, y0: float, p: float, z: float
) -> None:
    """Add the cell's fluorophore density of one channel, seen at focus z, to raster in place.

    raster[i, j] is the density at x0 + j * p, y0 + i * p (per um^2, before the lateral PSF).
    """
    ox, oy = x0 - cell.cx, y0 - cell.cy  # the raster's origin relative to the cell
    if channel in cell.points:
        _splat(cell.points[channel], raster, ox, oy, p, z)
    nx, ny, a, *_, nz, _ = cell.nucleus
    if channel == 0:
        window = _window(nx - ox, ny - oy, a + 0.5, raster.shape, p)
    else:
        window = _window(-ox, -oy, cell.reach, raster.shape, p)
    if window is None:
        return
    r0, r1, c0, c1 = window
    dx = (ox + np.arange(c0, c1, dtype=np.float32) * p)[None, :]
    dy = (oy + np.arange(r0, r1, dtype=np.float32) * p)[:, None]
    half = cell.nucleus_half(dx, dy)
    nucleus = _slab(nz - half, nz + half, z)
    if channel == 0:
        raster[r0:r1, c0:c1] += 0.9 * nucleus * _texture(cell, dx, dy, z)
        return
    d, edge = cell.edge(dx, dy)
    inside = np.clip((edge - d) / max(p, 0.1) + 0.5, 0, 1)
    top = cell.top(d / edge)
    if channel == 2:  # membranes: apical (tilted where the cell slopes), basal, and the rim
        rho = d / edge
        slope = 4 * (cell.height - _LAMELLA) * rho * np.clip(1 - rho**2, 0, 1) / edge
        tilt = np.minimum(np.sqrt(1 + slope**2), 3)
        sheets = tilt * _sheet(top - z) + _sheet(COVERSLIP_Z - z)
        wall = _slab(COVERSLIP_Z, COVERSLIP_Z + _LAMELLA, z)
        width = max(0.6 * p, 0.05)  # thin, but never finer than the pixel grid can sample
        ring = np.exp(-0.5 * ((d - edge) / width) ** 2) / (math.sqrt(2 * math.pi) * width)
        field = 0.08 * sheets * inside + 0.3 * wall * ring
    else:  # the soluble pool of tubulin or of the vesicle dye, excluded from the nucleus
        cytosol = np.clip(_slab(COVERSLIP_Z, top, z) - nucleus, 0, None)
        field = (0.04 if channel == 1 else 0.02) * cytosol * inside
    raster[r0:r1, c0:c1] += field


def _window(
    cx: float, cy: float, reach: float, shape: tuple[int, ...], p: float
) -> tuple[int, int, int, int] | None:
    """Rows r0:r1, columns c0:c1 of a raster (origin 0, 0) within reach of cx, cy, or None."""
    h, w = shape
    c0, c1 = max(math.floor((cx - reach) / p), 0), min(math.ceil((cx + reach) / p) + 1, w)
    r0, r1 = max(math.floor((cy - reach) / p), 0), min(math.ceil((cy + reach) / p) + 1, h)
    return (r0, r1, c0, c1) if c0 < c1 and r0 < r1 else None


def _texture(cell: _Cell, dx: np.ndarray, dy: np.ndarray, z: float) -> np.ndarray:
    """Chromatin texture at dx, dy: two layers cross-fading over a 5 um period in z."""
    tx, ty = cell.texture_origin
    rows = np.broadcast_to((dy - ty) / _TEXTURE_RES, np.broadcast(dx, dy).shape)
    cols = np.broadcast_to((dx - tx) / _TEXTURE_RES, rows.shape)
    mix = 0.5 + 0.5 * math.sin(2 * math.pi * z / 5.0)
    layers = [map_coordinates(t, [rows, cols], order=1, mode="nearest") for t in cell.texture]
    return (1 - mix) * layers[0] + mix * layers[1]


def _splat(
    points: np.ndarray, raster: np.ndarray, ox: float, oy: float, p: float, z: float
) -> None:
    """Add point sources (dx, dy relative to ox, oy) to raster with bilinear weights, per um^2."""
    h, w = raster.shape
    fx = (points[:, 0] - ox) / p
    fy = (points[:, 1] - oy) / p
    axial = _sheet(points[:, 2] - z)
    ok = (fx >= 0) & (fx < w - 1) & (fy >= 0) & (fy < h - 1) & (axial > 1e-3)
    fx, fy, weight = fx[ok], fy[ok], points[ok, 3] * axial[ok] / (p * p)
    ix, iy = fx.astype(np.intp), fy.astype(np.intp)
    ax, ay = fx - ix, fy - iy
    flat = iy * w + ix
    index = np.concatenate([flat, flat + 1, flat + w, flat + w + 1])
    share = np.concatenate([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay])
    raster += np.bincount(index, share * np.tile(weight, 4), minlength=h * w).reshape(h, w)


class Sample:
    """The world of one seed: renders noise-free fluorophore images of any field of view."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # detectors of several cores may share this world

    def render(
        self, channel: int, x: float, y: float, pixel_size: float, shape: tuple[int, int], z: float
    ) -> np.ndarray:
        """Fluorophore image (float32, `shape` = rows, columns) centred on x, y at focus z.

        Pixel [i, j] shows the world at x + (j - (W - 1) / 2) * pixel_size, likewise for y.
        """
        h, w = shape
        p = round(pixel_size, 9)
        u = x / p - (w - 1) / 2
        v = y / p - (h - 1) / 2
        col, row = math.floor(u), math.floor(v)
        fx, fy = u - col, v - row
        grid = self._region(channel, p, round(z, 3), row, col, h + 1, w + 1)
        out = (1 - fy) * ((1 - fx) * grid[:-1, :-1] + fx * grid[:-1, 1:])
        out += fy * ((1 - fx) * grid[1:, :-1] + fx * grid[1:, 1:])
        return out

    def _region(
        self, channel: int, p: float, z: float, row: int, col: int, h: int, w: int
    ) -> np.ndarray:
        """Rows row.., columns col.. of the world grid of pixel size p (pixel m sits at m * p)."""
        out = np.empty((h, w), np.float32)
        for ci in range(row // _CHUNK, (row + h - 1) // _CHUNK + 1):
            for cj in range(col // _CHUNK, (col + w - 1) // _CHUNK + 1):
                chunk = self._chunk(channel, p, z, ci, cj)
                r0, c0 = max(row, ci * _CHUNK), max(col, cj * _CHUNK)
                r1, c1 = min(row + h, (ci + 1) * _CHUNK), min(col + w, (cj + 1) * _CHUNK)
                out[r0 - row : r1 - row, c0 - col : c1 - col] = chunk[
                    r0 - ci * _CHUNK : r1 - ci * _CHUNK, c0 - cj * _CHUNK : c1 - cj * _CHUNK
                ]
        return out

    def _chunk(self, channel: int, p: float, z: float, ci: int, cj: int) -> np.ndarray:
        key = (channel, p, z, ci, cj)
        with self._lock:
            if (hit := self._chunks.get(key)) is not None:
                self._chunks.move_to_end(key)
                return hit
        margin = math.ceil(4 * PSF_SIGMA_XY / p) + 1
        n = _CHUNK + 2 * margin
        x0, y0 = (cj * _CHUNK - margin) * p, (ci * _CHUNK - margin) * p
        raster = np.zeros((n, n), np.float32)
        for cell in self._cells(x0, y0, x0 + n * p, y0 + n * p):
            _draw_cell(cell, channel, raster, x0, y0, p, z)
        blurred = gaussian_filter(raster, PSF_SIGMA_XY / p, mode="constant", truncate=4.0)
        chunk = blurred[margin:-margin, margin:-margin] + BACKGROUND
        with self._lock:
            self._chunks[key] = chunk
            if len(self._chunks) > _CHUNKS_CACHED:
                self._chunks.popitem(last=False)
        return chunk

    def _cells(self, x0: float, y0: float, x1: float, y1: float) -> list[_Cell]:
        """Cells that may reach into the rectangle x0..x1, y0..y1."""
        reach = 30.0  # > the largest cell reach
        found = []
        for gy in range(math.floor((y0 - reach) / _PITCH), math.floor((y1 + reach) / _PITCH) + 1):
            for gx in range(
                math.floor((x0 - reach) / _PITCH), math.floor((x1 + reach) / _PITCH) + 1
            ):
                cell = _cell(self.seed, gx, gy)
                if (
                    cell is not None
                    and x0 - cell.reach < cell.cx < x1 + cell.reach
                    and y0 - cell.reach < cell.cy < y1 + cell.reach
                ):
                    found.append(cell)
        return found
