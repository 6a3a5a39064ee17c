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
