"""Run an exported VAE with numpy and onnxruntime only: this module never imports TensorFlow.

    >>> from tfvae.runtime import Sampler
    >>> sampler = Sampler.load("export/digits")
    >>> x = sampler.sample(64, seed=0)             # (64, *data_shape) float32
    >>> loc, scale = sampler.encode(x)

The bundle is a folder written by `tfvae.export.export_model`: `decoder.onnx`,
`encoder.onnx` (optional), `manifest.json` and `manifest.sha256`. `Sampler.load` checks
the manifest's checksum and every file's SHA-256 before it opens a session, so a missing
or altered file is refused with its name. z ~ p(z) and x ~ p(x|z) are drawn in numpy from
the parameters the ONNX decoder computes, for every likelihood family.

Inputs are checked at every public call: z, x and conditions must be finite, and x must
lie in the likelihood's support as the manifest records it (`support_bounds()` of the
family in `tfvae.likelihoods`); a ValueError names the argument.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from tfvae import latent, validation

FORMAT_VERSION = 1


class BundleError(ValueError):
    """A bundle is missing a file, has an altered file, or has an unreadable manifest.

    Attributes:
        path: the offending file.
    """

    def __init__(self, path, reason: str):
        self.path = Path(path)
        super().__init__(f"{path}: {reason}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _first_offender(value: np.ndarray, bad: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{value[index]:g} at index {index}"


def _check_finite(value: np.ndarray, argument: str) -> None:
    """Raises a ValueError naming `argument` when `value` has a NaN or an infinity."""
    bad = ~np.isfinite(value)
    if bad.any():
        raise ValueError(
            f"Expected {argument} to be finite. Received: {argument} with "
            f"{np.count_nonzero(bad)} non-finite entries ({_first_offender(value, bad)})"
        )


def in_support(x: np.ndarray, bounds: dict) -> np.ndarray:
    """Elementwise: is each entry of `x` in the support that `bounds` describes?

    Args:
        x: an array of data values.
        bounds: a likelihood's `support_bounds()`, as the manifest records it:
            `{"low": float or None, "high": float or None, "integer": bool}`.

    Returns:
        A boolean array shaped like `x`; False for NaN and infinities.
    """
    x = np.asarray(x)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(x)
        if bounds["low"] is not None:
            inside &= x >= bounds["low"]
        if bounds["high"] is not None:
            inside &= x <= bounds["high"]
        if bounds["integer"]:
            inside &= x == np.round(x)
    return inside


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # exact and overflow-free


# --- x ~ p(x|z) in numpy, one function per likelihood family ------------------------------
def _bernoulli(params, constants, rng):
    probs = _sigmoid(params["logits"])
    return (rng.random(probs.shape) < probs).astype(np.float32)


def _continuous_bernoulli(params, constants, rng):
    # Inverse CDF: x = log1p(u * expm1(l)) / l for logits l (x = u at l = 0).
    logits = params["logits"].astype(np.float64)
    u = rng.random(logits.shape)
    small = np.abs(logits) < 1e-4
    safe = np.where(small, 1.0, logits)
    x = np.where(small, u, np.log1p(u * np.expm1(safe)) / safe)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _gaussian(params, constants, rng):
    loc = params["loc"]
    return (loc + constants["scale"] * rng.standard_normal(loc.shape)).astype(np.float32)


def _gaussian_learned_scale(params, constants, rng):
    loc = params["loc"]
    return (loc + params["scale"] * rng.standard_normal(loc.shape)).astype(np.float32)


def _binomial(params, constants, rng):
    probs = _sigmoid(params["logits"].astype(np.float64))
    return rng.binomial(constants["total_count"], probs).astype(np.float32)


LIKELIHOOD_SAMPLERS = {
    "bernoulli": _bernoulli,
    "continuous_bernoulli": _continuous_bernoulli,
    "gaussian": _gaussian,
    "gaussian_learned_scale": _gaussian_learned_scale,
    "binomial": _binomial,
}


# --- z ~ p(z) in numpy, one function per prior family --------------------------------------
def _standard_normal_prior(n, latent_dim, params, temperature, rng):
    return temperature * rng.standard_normal((n, latent_dim))


def _mixture_prior(n, latent_dim, params, temperature, rng):
    logits = np.asarray(params["logits"], dtype=np.float64)
    weights = np.exp(logits - logits.max())
    components = rng.choice(len(weights), size=n, p=weights / weights.sum())
    locs, scales = np.asarray(params["locs"]), np.asarray(params["scales"])
    noise = rng.standard_normal((n, latent_dim))
    return locs[components] + temperature * scales[components] * noise


PRIOR_SAMPLERS = {"standard_normal": _standard_normal_prior, "mixture": _mixture_prior}


class Sampler:
    """An exported VAE run by onnxruntime. Build it with `Sampler.load(bundle_dir)`.

    Attributes:
        manifest: the bundle's manifest (dict).
        latent_dim: size of z.
        data_shape: shape of one x, e.g. `(28, 28, 1)`.
        condition_shape: shape of one condition y of a conditional model, else None.
    """

    def __init__(self, manifest: dict, decoder, encoder=None):
        self.manifest = manifest
        self.latent_dim = int(manifest["latent_dim"])
        self.data_shape = tuple(manifest["data"]["shape"])
        condition_shape = manifest.get("condition_shape")
        self.condition_shape = None if condition_shape is None else tuple(condition_shape)
        self._decoder = decoder
        self._encoder = encoder
        # Output names, read once: batch-1 decoding takes tens of microseconds.
        self._decoder_outputs = [output.name for output in decoder.get_outputs()]
        self._encoder_outputs = [output.name for output in encoder.get_outputs()] if encoder else []
        self._likelihood = manifest["likelihood"]
        self._prior = manifest["prior"]

    @classmethod
    def load(cls, bundle_dir, providers=None, threads: int | None = None) -> "Sampler":
        """Verifies a bundle's files and opens its ONNX sessions.

        Args:
            bundle_dir: a folder written by `tfvae.export.export_model`.
            providers: onnxruntime execution providers (default: CPU).
            threads: intra-op threads of each session (default: onnxruntime's choice).

        Raises:
            BundleError: a file is missing or altered, or the manifest is unreadable or of
                an unknown format; the message names the file.
        """
        import onnxruntime

        bundle = Path(bundle_dir)
        manifest = _verified_manifest(bundle)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        providers = providers or ["CPUExecutionProvider"]
        sessions = {
            component: onnxruntime.InferenceSession(
                str(bundle / entry["file"]), sess_options=options, providers=providers
            )
            for component, entry in manifest["onnx"].items()
        }
        if "decoder" not in sessions:
            raise BundleError(bundle / "manifest.json", "the bundle has no decoder")
        return cls(manifest, sessions["decoder"], sessions.get("encoder"))

    # ----------------------------------------------------------------------- decoding

    def _checked_z(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"Expected z of shape (batch_size, latent_dim={self.latent_dim}). "
                f"Received: z.shape={z.shape}"
            )
        _check_finite(z, "z")
        return z

    def _check_x(self, x: np.ndarray, argument: str) -> None:
        """Raises a ValueError naming `argument` unless `x` is finite and in the support."""
        _check_finite(x, argument)
        bounds = self._likelihood.get("support")  # absent from older bundles
        if bounds is not None:
            outside = ~in_support(x, bounds)
            if outside.any():
                raise ValueError(
                    f"Expected {argument} in the support of the "
                    f"{self._likelihood['family']!r} likelihood: {_describe(bounds)}. "
                    f"Received: {argument} with {np.count_nonzero(outside)} entries outside "
                    f"it ({_first_offender(x, outside)})"
                )

    def _feeds(self, name: str, value: np.ndarray, condition) -> dict[str, np.ndarray]:
        """ONNX inputs: `name`, and `condition` broadcast to `(n, *condition_shape)`."""
        if self.condition_shape is None:
            if condition is not None:
                raise ValueError("This bundle's model is not conditional; it takes no condition.")
            return {name: value}
        if condition is None:
            raise ValueError(
                f"This bundle's model is conditional: pass condition=, of shape "
                f"{self.condition_shape} or (n, *{self.condition_shape})."
            )
        condition = np.asarray(condition, dtype=np.float32)
        _check_finite(condition, "condition")
        batch_shape = (len(value), *self.condition_shape)
        if condition.shape == self.condition_shape:  # one condition for the whole batch
            condition = np.broadcast_to(condition, batch_shape)
        if condition.shape != batch_shape:
            raise ValueError(
                f"Expected a condition of shape {self.condition_shape} or "
                f"(n, *{self.condition_shape}) with n={len(value)}. "
                f"Received: condition.shape={condition.shape}"
            )
        return {name: value, "condition": np.ascontiguousarray(condition)}

    def decode(self, z, condition=None) -> dict[str, np.ndarray]:
        """Likelihood parameters and `mean`, each `(n, *data_shape)`, for z `(n, latent_dim)`
        (and the condition, for a conditional model).

        Raises:
            ValueError: z or the condition has the wrong shape or a NaN or infinity.
        """
        feeds = self._feeds("z", self._checked_z(z), condition)
        return dict(zip(self._decoder_outputs, self._decoder.run(None, feeds), strict=True))

    def mean(self, z, condition=None) -> np.ndarray:
        """E[x|z], `(n, *data_shape)`."""
        return self.decode(z, condition)["mean"]

    def sample_latents(self, n: int, seed=None, temperature: float = 1.0) -> np.ndarray:
        """Draws z ~ p(z), `(n, latent_dim)` float32; `temperature` scales its spread."""
        n = validation.positive_int(n, "n")
        temperature = validation.positive_float(temperature, "temperature")
        rng = np.random.default_rng(seed)
        draw = PRIOR_SAMPLERS[self._prior["family"]]
        z = draw(n, self.latent_dim, self._prior["parameters"], temperature, rng)
        return z.astype(np.float32)

    def sample(
        self, n: int, seed=None, mean: bool = False, temperature: float = 1.0, condition=None
    ):
        """Draws x ~ p(x|z), z ~ p(z): `(n, *data_shape)` float32 (E[x|z] when `mean`).

        Args:
            n: number of samples.
            seed: numpy seed (int or None); the same seed gives the same samples.
            mean: return E[x|z] instead of a draw.
            temperature: multiplies the prior's standard deviations.
            condition: for a conditional model, one condition for all samples or one per
                sample.
        """
        rng = np.random.default_rng(seed)
        z = self.sample_latents(n, seed=rng, temperature=temperature)
        params = self.decode(z, condition)
        if mean:
            return params["mean"]
        draw = LIKELIHOOD_SAMPLERS[self._likelihood["family"]]
        return draw(params, self._likelihood["constants"], rng)

    # ----------------------------------------------------------------------- encoding

    def encode(self, x, condition=None) -> tuple[np.ndarray, np.ndarray]:
        """The posterior's location `(n, latent_dim)` and scale for x `(n, *data_shape)`.

        The scale is `(n, latent_dim)` standard deviations for a diagonal posterior and
        the `(n, latent_dim, latent_dim)` Cholesky factor for a full-covariance one.

        Raises:
            ValueError: the bundle has no encoder; or x or the condition has the wrong
                shape or a NaN or infinity; or x lies outside the likelihood's support
                (e.g. 0.5 for a binomial, 1.5 for a Bernoulli).
        """
        self._require_encoder()
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.data_shape:
            raise ValueError(
                f"Expected x of shape (batch_size, *{self.data_shape}). Received: x.shape={x.shape}"
            )
        self._check_x(x, "x")
        return self._encode(x, condition)

    def _require_encoder(self) -> None:
        if self._encoder is None:
            raise ValueError(
                "This bundle has no encoder: export with components=('decoder', 'encoder')."
            )

    def _encode(self, x: np.ndarray, condition) -> tuple[np.ndarray, np.ndarray]:
        """`encode` without the checks of x."""
        feeds = self._feeds("x", x, condition)
        params = dict(zip(self._encoder_outputs, self._encoder.run(None, feeds), strict=True))
        scale = params["scale"] if "scale" in params else params["scale_tril"]
        return params["loc"], scale

    def reconstruct(self, x, condition=None) -> np.ndarray:
        """E[x|z] at the posterior mean of each x: `(n, *data_shape)`."""
        loc, _ = self.encode(x, condition)
        return self.mean(loc, condition)

    def interpolate(
        self, x_a, x_b, steps: int = 8, method: str = "linear", condition=None
    ) -> np.ndarray:
        """E[x|z] along a path between two inputs' posterior means (one condition for both
        and for the path, for a conditional model); see `tfvae.latent.latent_path`.

        Returns:
            `(steps, *data_shape)`, from the reconstruction of `x_a` to that of `x_b`.

        Raises:
            ValueError: as `encode`, naming `x_a` or `x_b`.
        """
        self._require_encoder()
        ends = {"x_a": np.asarray(x_a, dtype=np.float32), "x_b": np.asarray(x_b, dtype=np.float32)}
        for argument, x in ends.items():
            if x.shape != self.data_shape:
                raise ValueError(
                    f"Expected {argument} of shape {self.data_shape}. "
                    f"Received: {argument}.shape={x.shape}"
                )
            self._check_x(x, argument)
        loc, _ = self._encode(np.stack(list(ends.values())), condition)
        path = latent.latent_path(loc[0], loc[1], steps, method).astype(np.float32)
        return self.mean(path, condition)


def _describe(bounds: dict) -> str:
    """Support bounds in words: "integers in [0, 16]", "reals in [0, 1]", "finite reals"."""
    kind = "integers" if bounds["integer"] else "reals"
    low, high = bounds["low"], bounds["high"]
    if low is None and high is None:
        return f"finite {kind}"
    low = "-inf" if low is None else f"{low:g}"
    high = "inf" if high is None else f"{high:g}"
    return f"{kind} in [{low}, {high}]"


def _verified_manifest(bundle: Path) -> dict:
    manifest_path, checksum_path = bundle / "manifest.json", bundle / "manifest.sha256"
    for path in (manifest_path, checksum_path):
        if not path.is_file():
            raise BundleError(path, "missing: not a bundle written by tfvae.export.export_model")
    recorded = checksum_path.read_text().split()
    if not recorded or recorded[0] != _sha256(manifest_path):
        raise BundleError(
            manifest_path, f"its SHA-256 does not match {checksum_path.name}: altered file"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(manifest_path, f"unreadable: {error}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            manifest_path,
            f"format_version {manifest.get('format_version')!r}; this runtime reads "
            f"{FORMAT_VERSION}",
        )
    for name, digest in manifest["files"].items():
        path = bundle / name
        if not path.is_file():
            raise BundleError(path, "missing")
        if _sha256(path) != digest:
            raise BundleError(path, "its SHA-256 does not match the manifest: altered file")
    return manifest
