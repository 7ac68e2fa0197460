"""Layer names at the ends of their trajectories, placed where they cover no
data: no plotted point, no line, no other name. A name that finds no such
place is left out (the legend names every layer anyway).

Call once the figure's layout is final (limits, colour bar, legend), since
the test is done in display coordinates."""
from .common import np

LABEL_GID = "layer-label"     # the gid of every name placed, for tests and later styling

# Offsets in points from the anchor, nearest first, in eight directions.
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_OFFSETS = [(r * dx, r * dy) for r in (5, 10, 18, 30, 45, 65) for dx, dy in _DIRECTIONS]
_MARGIN = 2.0                 # pixels kept clear around a name
_LEADER_FROM = 18             # points: a name this far off gets a leader line


def data_obstacles(ax):
    """What a name must not cover: the centre of every point drawn and every
    line, in display coordinates."""
    from matplotlib.collections import LineCollection
    from matplotlib.path import Path
    points, lines = [], []
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            lines += [coll.get_transform().transform(p.vertices) for p in coll.get_paths()]
        elif len(coll.get_offsets()):
            points.append(coll.get_offset_transform().transform(coll.get_offsets()))
    for line in ax.lines:
        lines.append(line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float)))
    lines = [xy[np.isfinite(xy).all(axis=1)] for xy in lines]
    points = np.concatenate(points + lines) if points or lines else np.empty((0, 2))
    points = points[np.isfinite(points).all(axis=1)]
    return points, [Path(xy) for xy in lines if len(xy) > 1]


def covers(box, points, paths):
    """Whether the display-space box covers any point or crosses any line."""
    grown = box.expanded(1, 1).padded(_MARGIN)
    inside = ((points[:, 0] >= grown.x0) & (points[:, 0] <= grown.x1)
              & (points[:, 1] >= grown.y0) & (points[:, 1] <= grown.y1))
    if inside.any():
        return True
    return any(p.intersects_bbox(grown, filled=False) for p in paths)


def place_label(ax, text, anchor, placed, obstacles):
    """Annotates `anchor` (data coordinates) with `text` at the nearest offset
    where the name stays inside the axes and covers no data and no name in
    `placed`; returns its extent, or None (and draws nothing) if none fits."""
    from matplotlib.text import Text
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    points, paths = obstacles
    for dx, dy in _OFFSETS:
        # A name set off from its point is tied to it by a thin leader line.
        leader = dict(arrowstyle="-", lw=0.5, color="0.35", shrinkA=1, shrinkB=3) \
            if max(abs(dx), abs(dy)) >= _LEADER_FROM else None
        label = ax.annotate(text, anchor, xytext=(dx, dy), textcoords="offset points",
                            ha="left" if dx > 0 else "right" if dx < 0 else "center",
                            va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                            fontsize=8.5, zorder=4, gid=LABEL_GID, arrowprops=leader)
        label.update_positions(renderer)
        box = Text.get_window_extent(label, renderer)      # the text, not its leader
        fits = (box.x0 >= inside.x0 and box.x1 <= inside.x1
                and box.y0 >= inside.y0 and box.y1 <= inside.y1)
        if fits and not any(box.overlaps(other) for other in placed) \
                and not covers(box, points, paths):
            return box
        label.remove()
    return None


def label_layers(ax, names, ends):
    """Names each trajectory at its last point; endpoints that nearly
    coincide (deep layers often all end at (H(X), H(Y))) share one name."""
    obstacles = data_obstacles(ax)
    placed = []
    for group in group_close(ax, ends):
        layers = [layer for layer, _ in group]
        if len(layers) == 1:
            text = names[layers[0]]
        elif layers == list(range(layers[0], layers[-1] + 1)):
            text = f"T{layers[0] + 1}–T{layers[-1] + 1}"
        else:
            text = ",".join(f"T{layer + 1}" for layer in layers)
        box = place_label(ax, text, group[-1][1], placed, obstacles)
        if box is not None:
            placed.append(box)
    return placed


def group_close(ax, ends, distance=0.05):
    """Groups (layer, (x, y)) endpoints closer than `distance` in axes fractions."""
    groups = []
    for layer, point in ends:
        here = np.asarray(ax.transLimits.transform(point))
        for group in groups:
            if np.hypot(*(here - ax.transLimits.transform(group[-1][1]))) < distance:
                group.append((layer, point))
                break
        else:
            groups.append([(layer, point)])
    return groups


def freeze_layout(fig):
    """Keeps the layout as it is now, so that placed names stay clear of the
    data when the figure is saved."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")

