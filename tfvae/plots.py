"""Pictures of a VAE as arrays and PNG files: grids of samples and reconstructions.

The functions here work on numpy arrays and need neither TensorFlow nor a display; the
ONNX runtime path uses them too.
"""

import io
import math
from pathlib import Path

import numpy as np

from tfvae import atomic

# Ten distinct colours for class labels (Tableau 10, as in matplotlib's "tab10"), RGB,
# none of them white; label k is drawn in PALETTE[k % 10].
PALETTE = np.array(
    [
        (31, 119, 180),  # blue
        (255, 127, 14),  # orange
        (44, 160, 44),  # green
        (214, 39, 40),  # red
        (148, 103, 189),  # purple
        (140, 86, 75),  # brown
        (227, 119, 194),  # pink
        (127, 127, 127),  # grey
        (188, 189, 34),  # olive
        (23, 190, 207),  # cyan
    ],
    dtype=np.uint8,
)


def image_grid(
    images, columns: int | None = None, data_range=(0.0, 1.0), padding: int = 1, zoom: int = 1
) -> np.ndarray:
    """Tiles images into one 8-bit picture.

    Args:
        images: `(n, height, width, channels)` with 1 (grey) or 3 (RGB) channels, in data
            units; values are mapped linearly from `data_range` to 0..255 and clipped.
        columns: images per row (default: the smallest square that holds them).
        data_range: `(low, high)` data values shown as black and white.
        padding: pixels of black between images.
        zoom: integer upscaling of every pixel (nearest neighbour), for tiny images.

    Returns:
        uint8 array `(rows * (zoom * height + padding) + padding, ..., channels)`.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "Expected images of shape (n, height, width, 1 or 3) with n >= 1. "
            f"Received: images.shape={images.shape}"
        )
    low, high = data_range
    if not high > low:
        raise ValueError(f"Expected data_range (low, high) with high > low. Received: {data_range}")
    n, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pixels = np.clip((images - low) / (high - low), 0.0, 1.0)
    pixels = np.round(pixels * 255).astype(np.uint8)
    pixels = pixels.repeat(zoom, axis=1).repeat(zoom, axis=2)
    cell_h, cell_w = zoom * height + padding, zoom * width + padding
    grid = np.zeros((rows * cell_h + padding, columns * cell_w + padding, channels), np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        top, left = padding + row * cell_h, padding + column * cell_w
        grid[top : top + zoom * height, left : left + zoom * width] = image
    return grid


def interleave(originals, reconstructions) -> np.ndarray:
    """`[x0, r0, x1, r1, ...]` from two `(n, ...)` arrays, to show pairs side by side."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    if originals.shape != reconstructions.shape:
        raise ValueError(
            "Expected originals and reconstructions of the same shape. Received: "
            f"{originals.shape} and {reconstructions.shape}"
        )
    pairs = np.stack([originals, reconstructions], axis=1)
    return pairs.reshape(-1, *originals.shape[1:])


def save_png(path, grid) -> Path:
    """Writes a uint8 `(height, width, 1 or 3)` array to `path` as PNG, atomically."""
    from PIL import Image

    grid = np.asarray(grid)
    if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[-1] not in (1, 3):
        raise ValueError(
            "Expected a uint8 array of shape (height, width, 1 or 3). "
            f"Received: dtype={grid.dtype}, shape={grid.shape}"
        )
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic.write_bytes(path, buffer.getvalue())


RECONSTRUCTION_COLUMNS = 8  # images beside their reconstructions: pairs in rows of 4


def default_zoom(height: int, target: int = 56) -> int:
    """The integer zoom that shows an image of `height` pixels at about `target` pixels."""
    return max(1, round(target / height))


def zoomed_grid(images, data_range=(0.0, 1.0), columns=None) -> np.ndarray:
    """`image_grid` of `images` `(n, height, width, channels)` at `default_zoom`, with
    padding of one zoomed pixel: the uint8 pixels `save_image_grid` writes."""
    zoom = default_zoom(np.shape(images)[1])
    return image_grid(images, columns=columns, data_range=data_range, padding=zoom, zoom=zoom)


def save_image_grid(path, images, data_range=(0.0, 1.0), columns=None) -> Path:
    """Writes `images` `(n, height, width, channels)` as a PNG grid, zoomed to be seen."""
    return save_png(path, zoomed_grid(images, data_range, columns))


def log_log_chart(
    series: dict,
    x_label: str = "",
    y_label: str = "",
    width: int = 560,
    height: int = 400,
    marker: int = 7,
) -> tuple[np.ndarray, dict]:
    """Draws lines through positive (x, y) points on log-log axes, one colour per series.

    Layout: the plot area spans columns [80, width - 20] and rows [20, height - 50]; the
    logs of the data's range, widened to whole decades, fill it, x increasing to the right
    and y upwards. Series k is drawn in `PALETTE[k % 10]` as straight segments between its
    points and a `marker` x `marker` square centred on each point (drawn last, so a point's
    centre pixel has its series' colour unless a later series' marker covers it), and is
    named in a legend at the top left. Decades are ticked and labelled (`1e-3`) on both
    axes.

    Args:
        series: label -> `(xs, ys)`, each a sequence of positive finite numbers of one
            length (at least 1).
        x_label: caption under the x axis.
        y_label: caption above the y axis.
        width: the picture's width in pixels (>= 200).
        height: the picture's height in pixels (>= 150).
        marker: side of each point's square in pixels, a positive odd integer.

    Returns:
        `(image, positions)`: uint8 `(height, width, 3)` RGB on white, and label ->
        `(num_points, 2)` integer (column, row) of each point's centre.

    Raises:
        ValueError: for no series, points that are not positive and finite, or series
            whose xs and ys differ in length.
    """
    from PIL import Image, ImageDraw

    if not series:
        raise ValueError("Expected at least one series to draw. Received: series={}")
    if width < 200 or height < 150 or marker < 1 or marker % 2 == 0:
        raise ValueError(
            "Expected width >= 200, height >= 150 and a positive odd marker. Received: "
            f"width={width}, height={height}, marker={marker}"
        )
    logs = {}
    for label, (xs, ys) in series.items():
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        points = np.stack([xs, ys], axis=-1) if xs.shape == ys.shape else np.zeros((0, 2))
        if points.ndim != 2 or len(points) == 0 or not np.all(np.isfinite(points) & (points > 0)):
            raise ValueError(
                f"Expected positive finite xs and ys of one length for series {label!r}. "
                f"Received: xs={list(xs)}, ys={list(ys)}"
            )
        logs[label] = np.log10(points)
    stacked = np.concatenate(list(logs.values()))
    low = np.floor(stacked.min(axis=0))
    high = np.maximum(np.ceil(stacked.max(axis=0)), low + 1)  # whole decades, at least one
    left, right, top, bottom = 80, width - 20, 20, height - 50

    def position(log_points):  # [N, 2] -> [N, 2] (column, row)
        fraction = (log_points - low) / (high - low)
        columns = left + np.rint(fraction[:, 0] * (right - left))
        rows = bottom - np.rint(fraction[:, 1] * (bottom - top))
        return np.stack([columns, rows], axis=1).astype(np.int64)

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    black, grey = (0, 0, 0), (210, 210, 210)
    for decade in range(int(low[0]), int(high[0]) + 1):
        column = int(position(np.array([[decade, low[1]]]))[0, 0])
        draw.line([(column, top), (column, bottom)], fill=grey)
        draw.text((column - 12, bottom + 6), f"1e{decade}", fill=black)
    for decade in range(int(low[1]), int(high[1]) + 1):
        row = int(position(np.array([[low[0], decade]]))[0, 1])
        draw.line([(left, row), (right, row)], fill=grey)
        draw.text((left - 44, row - 5), f"1e{decade}", fill=black)
    draw.rectangle([(left, top), (right, bottom)], outline=black)
    draw.text(((left + right) // 2 - 3 * len(x_label), height - 22), x_label, fill=black)
    draw.text((8, 4), y_label, fill=black)
    positions = {label: position(points) for label, points in logs.items()}
    half = marker // 2
    for index, (label, centres) in enumerate(positions.items()):
        colour = tuple(int(c) for c in PALETTE[index % len(PALETTE)])
        draw.line([tuple(map(int, centre)) for centre in centres], fill=colour, width=2)
        draw.text((left + 10, top + 8 + 14 * index), f"- {label}", fill=colour)
    for index, centres in enumerate(positions.values()):
        colour = tuple(int(c) for c in PALETTE[index % len(PALETTE)])
        for column, row in centres:
            draw.rectangle([(column - half, row - half), (column + half, row + half)], fill=colour)
    return np.asarray(image), positions
