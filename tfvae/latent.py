"""Pictures of a VAE's latent space, as arrays: interpolations, the 2-D manifold, a scatter.

Each picture comes in two layers: a numpy function of latent values that can be checked
on its own (`latent_path` from `tfvae.interpolation`, `manifold_latents`,
`scatter_image`) and a function of a trained model that encodes or decodes through it
(`interpolate`, `manifold`, `latent_scatter`). `tfvae.plots` turns the arrays into PNG files.

Example:
    >>> from tfvae import latent, plots
    >>> path = latent.interpolate(vae, x[0], x[1], steps=8, method="spherical")
    >>> plots.save_image_grid("path.png", path, columns=8)  # (8, *data_shape)
    >>> cells = latent.manifold(vae, grid=20)  # (20, 20, *data_shape); latent_dim=2
    >>> plots.save_png("scatter.png", latent.latent_scatter(vae, x, y))  # (256, 256, 3)
"""

import numbers
import statistics
from typing import TYPE_CHECKING

import numpy as np

from tfvae import plots, prior_families, validation
from tfvae.interpolation import METHODS as METHODS  # re-exported: public here too
from tfvae.interpolation import latent_path

if TYPE_CHECKING:
    from tfvae.model import VAE


# ------------------------------------------------------------------------ interpolation


def interpolate(model: "VAE", x_a, x_b, steps: int = 8, method: str = "linear") -> np.ndarray:
    """E[x|z] along a latent path between the posterior means of two inputs.

    Args:
        model: a VAE (built, or it is built from `x_a`'s shape).
        x_a: the first input, `data_shape`.
        x_b: the second input, `data_shape`.
        steps: number of pictures, an integer >= 2.
        method: `"linear"` or `"spherical"` (see `latent_path`).

    Returns:
        float32 `(steps, *data_shape)`: E[x|z_s] for z_s on `latent_path(E_q[z|x_a],
        E_q[z|x_b], steps, method)`; the first and last are the reconstructions
        `model(x)` of `x_a` and `x_b`.

    Raises:
        ValueError: for inputs of different shapes or not of the model's data shape, and
            as `latent_path`.
    """
    x = np.stack([np.asarray(x_a, dtype=np.float32), np.asarray(x_b, dtype=np.float32)])
    if model.data_shape is not None and x.shape[1:] != tuple(model.data_shape):
        raise ValueError(
            f"Expected x_a and x_b of the model's data shape {tuple(model.data_shape)}. "
            f"Received: shapes {np.shape(x_a)} and {np.shape(x_b)}"
        )
    means = np.asarray(model.encode(x).mean(), dtype=np.float64)  # [2, D]
    z = latent_path(means[0], means[1], steps=steps, method=method)  # [S, D]
    return np.asarray(model.decode(z.astype(np.float32)).mean())


# ----------------------------------------------------------------------------- manifold


def manifold_latents(grid: int = 20, margin: float = 0.05) -> np.ndarray:
    """The latent values of the manifold picture: a grid of standard normal quantiles.

    With q_k = Phi^-1(p_k), p = linspace(margin, 1 - margin, grid), cell `[i, j]` holds
    z = (q_j, q_{grid-1-i}): z_1 increases from left to right and z_2 from bottom to top,
    as on a plot (and as in `scatter_image`). Equal steps in probability give cells of
    equal prior mass (Kingma and Welling, 2014, figure 4).

    Args:
        grid: cells per side, an integer >= 2.
        margin: the probability left out at each end, in (0, 0.5).

    Returns:
        float64 `(grid, grid, 2)`.

    Raises:
        ValueError: for `grid` < 2 or `margin` outside (0, 0.5).
    """
    if isinstance(grid, bool) or not isinstance(grid, numbers.Integral) or grid < 2:
        raise ValueError(f"Expected grid to be an integer >= 2. Received: grid={grid!r}")
    if not isinstance(margin, numbers.Real) or not 0.0 < margin < 0.5:
        raise ValueError(f"Expected margin to be a number in (0, 0.5). Received: margin={margin!r}")
    normal = statistics.NormalDist()
    q = np.array([normal.inv_cdf(p) for p in np.linspace(margin, 1.0 - margin, int(grid))])
    z1, z2 = np.meshgrid(q, q[::-1])  # [G, G] each; rows run from high z2 to low.
    return np.stack([z1, z2], axis=-1)  # [G, G, 2]


def manifold(model: "VAE", grid: int = 20, margin: float = 0.05) -> np.ndarray:
    """E[x|z] on the grid of `manifold_latents`: the learned 2-D data manifold.

    Args:
        model: a built VAE with `latent_dim=2` and a `"standard_normal"` prior.
        grid: cells per side, an integer >= 2.
        margin: the probability left out at each end, in (0, 0.5).

    Returns:
        float32 `(grid, grid, *data_shape)`; `[i, j]` decodes `manifold_latents(grid,
        margin)[i, j]`.

    Raises:
        ValueError: when the latent space is not 2-D or the prior is not standard normal
            (the grid's quantiles are those of N(0, 1)), or for a bad `grid`/`margin`.
    """
    prior = model.prior_layer
    if model.latent_dim != 2 or not isinstance(prior, prior_families.StandardNormal):
        raise ValueError(
            f"Expected a model with latent_dim=2 and prior "
            f"{prior_families.StandardNormal.family!r} for a manifold grid of normal "
            f"quantiles. Received: latent_dim={model.latent_dim}, prior="
            f"{getattr(prior, 'family', type(prior).__name__)!r}. Use interpolate or "
            "latent_scatter for other models."
        )
    z = manifold_latents(grid, margin)  # [G, G, 2]
    means = np.asarray(model.decode(z.reshape(-1, 2).astype(np.float32)).mean())
    return means.reshape(*z.shape[:2], *means.shape[1:])  # [G, G, *data_shape]


# ------------------------------------------------------------------------------ scatter


def scatter_image(
    points, labels, size: int = 256, margin: float = 0.05, marker: int = 3
) -> np.ndarray:
    """Rasterizes 2-D points as squares coloured by label, on white: a numpy scatter plot.

    Layout: with m = max(marker // 2, round(margin * size)) pixels of margin and
    span = size - 1 - 2 m, a point (p_1, p_2) is centred on column
    m + rint((p_1 - min p_1) / (max p_1 - min p_1) * span) and row
    m + rint((max p_2 - p_2) / (max p_2 - min p_2) * span): the data's range fills the
    image less the margin, p_1 increases to the right and p_2 upwards. A coordinate with
    no spread is centred (fraction 1/2). Each point is a `marker` x `marker` square in
    `plots.PALETTE[label % 10]`; later points are drawn over earlier ones. No axes or
    ticks are drawn: the background stays white (255, 255, 255).

    Args:
        points: `(num_points, 2)` finite coordinates, num_points >= 1.
        labels: `(num_points,)` integers.
        size: the image's height and width in pixels.
        margin: the blank border as a fraction of `size`, in [0, 0.5).
        marker: side of each point's square in pixels, a positive odd integer.

    Returns:
        uint8 `(size, size, 3)` RGB.

    Raises:
        ValueError: for bad shapes, non-integer labels, non-finite points, or a `size`
            too small to leave a pixel of span inside the margin.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(
            f"Expected points of shape (num_points >= 1, 2). Received: points.shape={points.shape}"
        )
    if labels.shape != points.shape[:1] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Expected integer labels of shape ({points.shape[0]},), one per point. "
            f"Received: labels.shape={labels.shape}, dtype={labels.dtype}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("Expected finite points. Received non-finite coordinates.")
    size = validation.positive_int(size, "size")
    marker = validation.positive_int(marker, "marker")
    if marker % 2 == 0:
        raise ValueError(f"Expected marker to be an odd number of pixels. Received: {marker}")
    if not isinstance(margin, numbers.Real) or not 0.0 <= margin < 0.5:
        raise ValueError(f"Expected margin to be a number in [0, 0.5). Received: margin={margin!r}")
    half = marker // 2
    border = max(half, round(margin * size))
    span = size - 1 - 2 * border
    if span < 1:
        raise ValueError(
            f"Expected size > {2 * border + 1} for margin={margin} and marker={marker}. "
            f"Received: size={size}"
        )
    low, high = points.min(axis=0), points.max(axis=0)
    spread = high - low
    fraction = np.where(spread > 0, (points - low) / np.where(spread > 0, spread, 1.0), 0.5)
    columns = border + np.rint(fraction[:, 0] * span).astype(np.int64)  # [N]
    rows = border + np.rint((1.0 - fraction[:, 1]) * span).astype(np.int64)  # [N]
    # owner[pixel] = the last point whose square covers it (-1: none), so that later
    # points are drawn over earlier ones whatever order numpy assigns in.
    owner = np.full(size * size, -1, dtype=np.int64)
    order = np.arange(len(points))
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            np.maximum.at(owner, (rows + dy) * size + columns + dx, order)
    image = np.full((size * size, 3), 255, dtype=np.uint8)
    painted = owner >= 0
    image[painted] = plots.PALETTE[np.mod(labels[owner[painted]], len(plots.PALETTE))]
    return image.reshape(size, size, 3)


def latent_scatter(
    model: "VAE",
    x,
    labels,
    size: int = 256,
    margin: float = 0.05,
    marker: int = 3,
    batch_size: int = 500,
) -> np.ndarray:
    """A scatter of posterior means E_q[z|x] coloured by label, as an RGB image.

    Only the first two latent dimensions are shown (z_1 to the right, z_2 upwards; for
    latent_dim > 2 this is a projection, not a 2-D embedding). A 1-D latent space is an
    error rather than a degenerate line of overdrawn points. The layout is
    `scatter_image`'s: axes scaled to the means' range, a margin, no axes drawn.

    Args:
        model: a VAE with latent_dim >= 2.
        x: `(num_examples, *data_shape)` model inputs, num_examples >= 1.
        labels: `(num_examples,)` integer labels; label k is drawn in
            `plots.PALETTE[k % 10]`.
        size: the image's height and width in pixels.
        margin: the blank border as a fraction of `size`.
        marker: side of each point's square in pixels (odd).
        batch_size: examples encoded at once.

    Returns:
        uint8 `(size, size, 3)` RGB on a white background.

    Raises:
        ValueError: for latent_dim < 2, and as `scatter_image`.
    """
    if model.latent_dim < 2:
        raise ValueError(
            "Expected a model with latent_dim >= 2 for a scatter of the first two latent "
            f"dimensions. Received: latent_dim={model.latent_dim}"
        )
    batch_size = validation.positive_int(batch_size, "batch_size")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"Expected x of shape (num_examples >= 1, *data_shape). Received: x.shape={x.shape}"
        )
    means = np.concatenate(
        [
            np.asarray(model.encode(x[start : start + batch_size]).mean())[:, :2]
            for start in range(0, len(x), batch_size)
        ]
    )  # [N, 2]
    return scatter_image(means, labels, size=size, margin=margin, marker=marker)
