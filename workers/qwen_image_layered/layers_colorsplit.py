"""The colorsplit engine's picture work: one layer per connected shape of one colour, numpy only.

A LOCAL DEMO, not Qwen-Image-Layered. The layers follow the model's convention (and the client's,
rp_notebook/results/_layers.py): they stack bottom first, so layer 1 is the background and
alpha-compositing them in order gives the picture back.

How a picture (already at the output size) is split:

1. Palette. On a flat picture (a drawing, a logo, a diagram) the palette is the colours of its flat
   areas: pixels that differ from each of their 8 neighbours by at most FLAT_TOLERANCE per channel,
   binned, most common first, each new colour at least CLOSE from those taken. Blended edge pixels
   (antialiasing, resampling) are never flat, so they never become a palette colour. When under
   half of the picture is within CLOSE of that palette (a photo), median cut gives `layers` colours
   instead.
2. Each visible pixel within CLOSE of a palette colour joins it. The others (blended edges) join
   the neighbouring region whose colour is nearest to theirs, a pixel deeper each round, so an
   antialiased edge belongs to one of the two shapes it separates; whatever is still left after
   FLOOD_ROUNDS rounds (a gradient) takes its nearest palette colour.
3. Connected components (8-connected) of each colour: the shapes.
4. Merging, never dropping a pixel: shapes under SPECK_SHARE of the picture join the neighbour of
   the nearest colour; the background (the shape touching the border most, else the largest) takes
   every shape of its own colour (holes and gaps show the background); then, while there are more
   shapes than `layers`, the smallest shape of a colour that has a larger shape elsewhere joins that
   larger one, and after that the smallest shape joins its neighbour of the nearest colour.
5. Layers: the background first, then the shapes by area, largest first; each pixel keeps its own
   RGBA in exactly one layer, so the composite is the picture exactly. Fewer shapes than `layers`
   leave the last layers empty (the service says so in `warnings`).

Colours are compared in RGB only: a soft (semi-transparent) edge of a shape stays with the shape,
with its own alpha. Fully transparent pixels are in no layer.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "CLOSE",
    "FLAT_TOLERANCE",
    "FLOOD_ROUNDS",
    "MAX_COLOURS",
    "SPECK_SHARE",
    "label_components",
    "split_colors",
]

#: RGB distance within which a pixel joins a palette colour (antialiasing and JPEG noise stay within it).
CLOSE = 32.0
#: A pixel is flat when no channel differs from any neighbour's by more than this.
FLAT_TOLERANCE = 4
#: A colour enters the palette with at least this share of the visible pixels as flat pixels.
PALETTE_SHARE = 5e-5
#: Under this share of the visible pixels near the palette, the picture is treated as a photo.
PHOTO_COVERAGE = 0.5
#: At most this many palette colours on a flat picture.
MAX_COLOURS = 24
#: Rounds of growing the regions into the blended pixels between them.
FLOOD_ROUNDS = 12
#: Shapes under this share of the visible pixels are specks: they join a neighbour.
SPECK_SHARE = 1e-4

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
#: Half of the 8 neighbours: each pair of neighbouring pixels is seen once.
_FORWARD = ((0, 1), (1, -1), (1, 0), (1, 1))


def split_colors(picture: Image.Image, layers: int, size: tuple[int, int] | None = None) -> list[Image.Image]:
    """`layers` RGBA images at `size` (default: the picture's): the background first, then one
    shape of one colour per layer, largest first; alpha-compositing them in order gives the picture
    at `size` (Lanczos-resampled when `size` differs) exactly."""
    size = size or picture.size
    picture = picture.convert("RGBA")
    # Pillow premultiplies alpha while resampling RGBA, so transparent pixels do not bleed.
    resized = picture if picture.size == size else picture.resize(size, Image.Resampling.LANCZOS)
    rgba = np.asarray(resized, dtype=np.uint8)
    layer_of = assign_layers(rgba, layers)
    out: list[Image.Image] = []
    for index in range(layers):
        layer = np.zeros_like(rgba)
        mask = layer_of == index
        layer[mask] = rgba[mask]
        out.append(Image.fromarray(layer, "RGBA"))
    return out


def assign_layers(rgba: np.ndarray, layers: int) -> np.ndarray:
    """The layer index (0 = background) of each pixel of an (H, W, 4) uint8 picture; -1 where fully
    transparent. Indices are below `layers`; when there are fewer shapes, the top ones are unused."""
    visible = rgba[..., 3] > 0
    result = np.full(visible.shape, -1, dtype=np.int32)
    count = int(visible.sum())
    if count == 0:
        return result
    rgb = rgba[..., :3]
    colour = _colour_classes(rgb, visible, layers)
    comp, classes = label_components(colour)
    n = len(classes)
    comp_flat = comp.ravel()
    shown = comp_flat >= 0
    area = np.bincount(comp_flat[shown], minlength=n).astype(np.int64)
    border = np.zeros(visible.shape, dtype=bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    on_border = comp[border & visible]
    border_count = np.bincount(on_border, minlength=n).astype(np.int64)
    pairs = _adjacency(comp)
    palette_rgb = _class_colours(rgb, colour, int(classes.max()) + 1)

    groups = _Groups(area, border_count, classes, palette_rgb, pairs)
    groups.absorb_specks(max(2, int(count * SPECK_SHARE)))
    groups.merge_into_background()
    groups.merge_same_colour(layers)
    groups.merge_nearest(layers)
    rank = groups.layer_order()
    result.ravel()[shown] = rank[groups.group[comp_flat[shown]]]
    return result


# --- colours ------------------------------------------------------------------------------------


def _colour_classes(rgb: np.ndarray, visible: np.ndarray, layers: int) -> np.ndarray:
    """The palette index of each pixel (H, W), -1 where transparent; see the module's steps 1 and 2."""
    pixels = rgb[visible].astype(np.float32)
    palette = _flat_palette(rgb, visible)
    nearest, distance = _nearest(pixels, palette) if len(palette) else (None, None)
    if nearest is None or distance is None or float(np.mean(distance <= CLOSE**2)) < PHOTO_COVERAGE:
        palette = _median_cut(pixels, layers)
        nearest, distance = _nearest(pixels, palette)
        colour = np.full(visible.shape, -1, dtype=np.int32)
        colour[visible] = nearest
        return colour
    undecided = -2
    colour = np.full(visible.shape, -1, dtype=np.int32)
    colour[visible] = np.where(distance <= CLOSE**2, nearest, undecided)
    _flood(colour, rgb, palette, undecided)
    left = colour == undecided
    if left.any():
        colour[left] = _nearest(rgb[left].astype(np.float32), palette)[0]
    return colour


def _flat_palette(rgb: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The colours of the picture's flat areas, most common first, (K, 3) float32."""
    flat = visible.copy()
    signed = rgb.astype(np.int16)
    height, width = visible.shape
    for dy, dx in _FORWARD:
        a, b = _pair_slices(height, width, dy, dx)
        differs = (np.abs(signed[a] - signed[b]).max(axis=-1) > FLAT_TOLERANCE) | ~visible[a] | ~visible[b]
        flat[a] &= ~differs
        flat[b] &= ~differs
    values = rgb[flat].astype(np.int64)
    if not len(values):
        return np.zeros((0, 3), dtype=np.float32)
    key = (values[:, 0] >> 4) << 8 | (values[:, 1] >> 4) << 4 | (values[:, 2] >> 4)
    counts = np.bincount(key, minlength=4096)
    sums = np.stack([np.bincount(key, weights=values[:, c], minlength=4096) for c in range(3)], axis=1)
    minimum = max(4, int(visible.sum() * PALETTE_SHARE))
    chosen: list[np.ndarray] = []
    for bin_ in np.argsort(-counts, kind="stable"):
        if counts[bin_] < minimum or len(chosen) == MAX_COLOURS:
            break
        mean = sums[bin_] / counts[bin_]
        if all(float(((mean - c) ** 2).sum()) > CLOSE**2 for c in chosen):
            chosen.append(mean)
    return np.asarray(chosen, dtype=np.float32).reshape(-1, 3)


def _median_cut(pixels: np.ndarray, colours: int) -> np.ndarray:
    """`colours` median-cut colours of (N, 3) pixels, (K, 3) float32: the palette of a photo."""
    # An even sample of 65,536 pixels finds the same few colours as a megapixel does, 10x faster.
    pixels = pixels[:: max(1, len(pixels) // 65_536)]
    side = int(np.ceil(np.sqrt(len(pixels))))
    padded = np.resize(pixels.astype(np.uint8), (side * side, 3)).reshape(side, side, 3)
    quantized = Image.fromarray(padded, "RGB").quantize(
        colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    used = np.unique(np.asarray(quantized))
    palette = np.asarray(quantized.getpalette() or [], dtype=np.float32).reshape(-1, 3)
    return palette[used]


def _nearest(pixels: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest palette colour, squared distance to it) of each of (N, 3) pixels."""
    best = np.full(len(pixels), np.inf, dtype=np.float32)
    index = np.zeros(len(pixels), dtype=np.int32)
    for k, colour in enumerate(palette):
        distance = ((pixels - colour) ** 2).sum(axis=1)
        closer = distance < best
        best[closer] = distance[closer]
        index[closer] = k
    return index, best


def _flood(colour: np.ndarray, rgb: np.ndarray, palette: np.ndarray, undecided: int) -> None:
    """Grow the decided regions into the undecided pixels, the nearest-coloured neighbour winning."""
    height, width = colour.shape
    flat = colour.ravel()
    todo = np.flatnonzero(flat == undecided)
    pixels = rgb.reshape(-1, 3)
    for _ in range(FLOOD_ROUNDS):
        if not len(todo):
            return
        ys, xs = np.divmod(todo, width)
        own = pixels[todo].astype(np.float32)
        best = np.full(len(todo), np.inf, dtype=np.float32)
        choice = np.full(len(todo), -1, dtype=np.int32)
        for dy, dx in _NEIGHBOURS:
            ny, nx = ys + dy, xs + dx
            inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            theirs = np.full(len(todo), -1, dtype=np.int32)
            theirs[inside] = flat[ny[inside] * width + nx[inside]]
            known = theirs >= 0
            distance = np.where(known, ((own - palette[np.maximum(theirs, 0)]) ** 2).sum(axis=1), np.inf)
            closer = distance < best
            best[closer] = distance[closer]
            choice[closer] = theirs[closer]
        grown = choice >= 0
        if not grown.any():
            return
        # All at once: a pixel decided this round is a neighbour only from the next one on.
        flat[todo[grown]] = choice[grown]
        todo = todo[~grown]


def _class_colours(rgb: np.ndarray, colour: np.ndarray, classes: int) -> np.ndarray:
    """The mean RGB of each colour class, (classes, 3) float64: what its shapes look like."""
    shown = colour >= 0
    index = colour[shown]
    values = rgb[shown].astype(np.float64)
    counts = np.maximum(np.bincount(index, minlength=classes), 1)
    return (
        np.stack([np.bincount(index, weights=values[:, c], minlength=classes) for c in range(3)], axis=1)
        / (counts[:, None])
    )


# --- shapes -------------------------------------------------------------------------------------


def _pair_slices(
    height: int, width: int, dy: int, dx: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices (a, b) of an (H, W) array such that b[i, j] is a[i, j]'s neighbour at (dy, dx), dy >= 0."""
    x0, x1 = max(0, -dx), width - max(0, dx)
    return (slice(0, height - dy), slice(x0, x1)), (slice(dy, height), slice(x0 + dx, x1 + dx))


def label_components(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of equal non-negative values of an (H, W) int array.

    Returns (component of each pixel, -1 where the value is negative; the value of each component).
    Union-find over the runs of each row, vectorised: hook each root to the smallest root it
    touches, then jump pointers until every run points at its root.
    """
    height, width = labels.shape
    starts = np.ones(labels.shape, dtype=bool)
    starts[:, 1:] = labels[:, 1:] != labels[:, :-1]
    run_of = np.cumsum(starts.ravel()).reshape(labels.shape) - 1
    runs = int(run_of[-1, -1]) + 1
    run_value = labels.ravel()[starts.ravel()]
    edges_a: list[np.ndarray] = []
    edges_b: list[np.ndarray] = []
    for dx in (-1, 0, 1):
        a, b = _pair_slices(height, width, 1, dx)
        # Where two runs overlap, the overlap starts where one of them starts: one pixel pair each.
        same = (labels[a] == labels[b]) & (labels[a] >= 0) & (starts[a] | starts[b])
        edges_a.append(run_of[a][same])
        edges_b.append(run_of[b][same])
    first = np.concatenate(edges_a).astype(np.int64)
    second = np.concatenate(edges_b).astype(np.int64)
    unique = np.unique(first * runs + second)
    first, second = unique // runs, unique % runs
    parent = np.arange(runs, dtype=np.int64)
    while len(first):
        root_a, root_b = parent[first], parent[second]
        apart = root_a != root_b
        first, second, root_a, root_b = first[apart], second[apart], root_a[apart], root_b[apart]
        if not len(first):
            break
        np.minimum.at(parent, np.maximum(root_a, root_b), np.minimum(root_a, root_b))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    kept = run_value >= 0
    roots, component_of_run = np.unique(np.where(kept, parent, -1), return_inverse=True)
    offset = 1 if len(roots) and roots[0] == -1 else 0
    component_of_run = component_of_run.astype(np.int64) - offset
    component = component_of_run[run_of]
    values = run_value[roots[offset:]]
    return component, values


def _adjacency(component: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, shared) for each pair of touching components a < b: how many neighbour pairs they share."""
    height, width = component.shape
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    for dy, dx in _FORWARD:
        a, b = _pair_slices(height, width, dy, dx)
        ca, cb = component[a], component[b]
        touch = (ca != cb) & (ca >= 0) & (cb >= 0)
        found_a.append(np.minimum(ca[touch], cb[touch]))
        found_b.append(np.maximum(ca[touch], cb[touch]))
    first = np.concatenate(found_a).astype(np.int64)
    second = np.concatenate(found_b).astype(np.int64)
    scale = int(component.max()) + 1
    keys, shared = np.unique(first * scale + second, return_counts=True)
    return keys // scale, keys % scale, shared


class _Groups:
    """Shapes being merged: `group[c]` is the group of component c, named by one of its components."""

    def __init__(
        self,
        area: np.ndarray,
        border: np.ndarray,
        classes: np.ndarray,
        colours: np.ndarray,
        pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        self.area = area
        self.border = border
        self.classes = classes
        self.colours = colours
        self.pair_a, self.pair_b, self.shared = pairs
        self.group = np.arange(len(area), dtype=np.int64)
        self.background = -1

    # Group-level views, recomputed after each change (components number in the thousands at most
    # for a picture, tens of thousands for a photo; each view is a few numpy passes).

    def _sizes(self) -> np.ndarray:
        return np.bincount(self.group, weights=self.area, minlength=len(self.area))

    def _main_class(self) -> np.ndarray:
        """The colour class of each group's largest component (indexed by group id)."""
        order = np.lexsort((-self.area, self.group))
        first = np.ones(len(order), dtype=bool)
        first[1:] = self.group[order][1:] != self.group[order][:-1]
        main = np.full(len(self.area), -1, dtype=np.int64)
        main[self.group[order][first]] = self.classes[order][first]
        return main

    def _group_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ga, gb = self.group[self.pair_a], self.group[self.pair_b]
        apart = ga != gb
        lo, hi = np.minimum(ga, gb)[apart], np.maximum(ga, gb)[apart]
        scale = len(self.area)
        keys, index = np.unique(lo * scale + hi, return_inverse=True)
        shared = np.bincount(index, weights=self.shared[apart], minlength=len(keys))
        return keys // scale, keys % scale, shared

    def _alive(self) -> np.ndarray:
        return np.unique(self.group)

    def _join(self, members: np.ndarray, targets: np.ndarray) -> None:
        """Merge each group in `members` into the group named in `targets` (same length)."""
        mapping = np.arange(len(self.area), dtype=np.int64)
        mapping[members] = targets
        # Targets are never themselves merged in the same call, so one lookup settles every group.
        self.group = mapping[self.group]

    def _distance(self, main: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(((self.colours[main[a]] - self.colours[main[b]]) ** 2).sum(axis=-1))

    def absorb_specks(self, smallest: int) -> None:
        """Shapes under `smallest` pixels join the touching shape of the nearest colour (a few rounds,
        so a cluster of specks next to a shape joins it too); an isolated speck stays."""
        for _ in range(4):
            sizes = self._sizes()
            alive = self._alive()
            speck = np.zeros(len(self.area), dtype=bool)
            speck[alive] = sizes[alive] < smallest
            if not speck[alive].any() or speck[alive].all():
                return
            a, b, shared = self._group_pairs()
            # Each pair both ways round: (speck, solid neighbour).
            small = np.concatenate([a, b])
            big = np.concatenate([b, a])
            length = np.concatenate([shared, shared])
            keep = speck[small] & ~speck[big]
            small, big, length = small[keep], big[keep], length[keep]
            if not len(small):
                return
            main = self._main_class()
            distance = self._distance(main, small, big)
            order = np.lexsort((-length, distance, small))
            first = np.ones(len(order), dtype=bool)
            first[1:] = small[order][1:] != small[order][:-1]
            self._join(small[order][first], big[order][first])

    def merge_into_background(self) -> None:
        """Pick the background (most border pixels, then the largest) and give it every group of its
        colour: a hole in a shape, or a gap between shapes, shows the background."""
        sizes = self._sizes()
        border = np.bincount(self.group, weights=self.border, minlength=len(self.area))
        alive = self._alive()
        best = np.lexsort((-alive, sizes[alive], border[alive]))[-1]
        self.background = int(alive[best])
        main = self._main_class()
        same = alive[(main[alive] == main[self.background]) & (alive != self.background)]
        self._join(same, np.full(len(same), self.background))

    def merge_same_colour(self, layers: int) -> None:
        """While there are more groups than `layers`: the smallest group whose colour has a larger
        group joins the largest group of that colour."""
        alive = self._alive()
        extra = len(alive) - layers
        if extra <= 0:
            return
        sizes = self._sizes()
        main = self._main_class()
        # Per colour, the largest group (the background, for its colour) keeps the others.
        order = np.lexsort((alive, -sizes[alive], main[alive]))
        ranked = alive[order]
        first = np.ones(len(ranked), dtype=bool)
        first[1:] = main[ranked][1:] != main[ranked][:-1]
        keeper_of_class = dict(zip(main[ranked][first].tolist(), ranked[first].tolist(), strict=True))
        others = ranked[~first]
        others = others[np.lexsort((others, sizes[others]))][:extra]
        targets = np.asarray([keeper_of_class[int(c)] for c in main[others]], dtype=np.int64)
        self._join(others, targets)

    def merge_nearest(self, layers: int) -> None:
        """While there are more groups than `layers`: the smallest (never the background) joins the
        touching group of the nearest colour, or, touching none, the nearest colour anywhere."""
        while len(alive := self._alive()) > layers:
            sizes = self._sizes()
            main = self._main_class()
            candidates = alive[alive != self.background]
            small = int(candidates[np.lexsort((candidates, sizes[candidates]))[0]])
            a, b, shared = self._group_pairs()
            touching = np.concatenate([b[a == small], a[b == small]])
            length = np.concatenate([shared[a == small], shared[b == small]])
            if not len(touching):
                touching = alive[alive != small]
                length = np.zeros(len(touching))
            distance = self._distance(main, np.full(len(touching), small), touching)
            target = touching[np.lexsort((touching, -length, distance))[0]]
            self._join(np.asarray([small]), np.asarray([target]))

    def layer_order(self) -> np.ndarray:
        """The layer of each group (indexed by group id): the background 0, then largest first."""
        sizes = self._sizes()
        alive = self._alive()
        others = alive[alive != self.background]
        others = others[np.lexsort((others, -sizes[others]))]
        rank = np.full(len(self.area), -1, dtype=np.int64)
        rank[self.background] = 0
        rank[others] = np.arange(1, len(others) + 1)
        return rank
