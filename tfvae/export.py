"""Export a trained VAE for deployment: a TF SavedModel and an ONNX bundle, checked.

`export_model` writes
    - a SavedModel in the TF Serving layout `saved_models/NAME/VERSION/`, with signatures
      `decode` (z -> the likelihood's parameters and its mean), `encode` (x -> the
      posterior's parameters) and `serving_default` (= `decode`); it loads with
      `tf.saved_model.load` in a process that never imports tfvae;
    - a bundle `export/NAME/` with `decoder.onnx`, `encoder.onnx`, `manifest.json` and
      `manifest.sha256`, which `tfvae.runtime.Sampler` runs with numpy and onnxruntime.

A model with a hierarchy of latents (`tfvae.priors.Hierarchical`) exports one decoder and
one encoder per layer above z1: `decoder_K` maps z_K to the parameters of
p(z_{K-1}|z_K) and `encoder_K` maps z_{K-1} to those of q(z_K|z_{K-1}) (signatures
`decode_K`, `encode_K`), and the manifest's prior entry describes the chain; the runtime
draws every layer's latents between the networks, in numpy.

No sampling op goes into a graph (tf2onnx cannot convert TensorFlow's stateless random
ops): z is an input, and the runtime draws z and x ~ p(x|z) in numpy from the
likelihood's parameters, whose names and constants the manifest records.

Both are checked before they are put in place: the SavedModel and the ONNX models are run
on random z and on real x and compared with the Keras model; an error above `atol` fails
the export. Everything is written to temporary folders and renamed into place, so a
failed or interrupted export leaves earlier exports as they were. An export replaces only
a bundle or a SavedModel version that tfvae wrote, and refuses any other destination
before it starts (`check_destinations`, `tfvae.outputs`).
"""

from pathlib import Path

import tfvae._backend  # noqa: F401

import numpy as np
import tensorflow as tf

import tfvae
from tfvae import atomic, bundle, likelihoods, outputs, posteriors, precision, priors, validation
from tfvae.model import VAE

COMPONENTS = ("decoder", "encoder")
_PARITY_SAMPLES = 64


class ExportParityError(ValueError):
    """An exported model disagrees with the Keras model by more than the tolerance.

    Attributes:
        errors: `{format: {component: max abs error}}` as measured.
        atol: the tolerance that was exceeded.
    """

    def __init__(self, errors: dict, atol: float):
        self.errors = errors
        self.atol = atol
        super().__init__(
            f"Export failed its parity check: max abs errors {errors} exceed atol={atol:g}. "
            "Nothing was written."
        )


def _signature(component: str) -> str:
    """The SavedModel signature of a network: decoder -> decode, encoder_2 -> encode_2."""
    kind, _, depth = component.partition("_")
    return kind.removesuffix("r") + (f"_{depth}" if depth else "")


def _input_specs(model: VAE, first: str, shape) -> list[tf.TensorSpec]:
    """The named inputs of an exported network: `first`, and `condition` if conditional."""
    specs = [tf.TensorSpec([None, *shape], tf.float32, name=first)]
    if model.condition_shape is not None:
        specs.append(tf.TensorSpec([None, *model.condition_shape], tf.float32, name="condition"))
    return specs


def _decode_function(model: VAE):
    """z `(batch, latent_dim)` [, condition] -> {likelihood parameter, "mean"}, each
    `(batch, *data_shape)`."""

    def decode(z, condition=None):
        params = model.likelihood_parameters(z, condition)
        return {**params, "mean": model.likelihood.mean(params)}

    return tf.function(decode, input_signature=_input_specs(model, "z", [model.latent_dim]))


def _encode_function(model: VAE):
    """x `(batch, *data_shape)` [, condition] -> {posterior parameter: `(batch, latent_dim
    [, latent_dim])`}."""

    def encode(x, condition=None):
        return model.posterior_parameters(x, condition)

    return tf.function(encode, input_signature=_input_specs(model, "x", model.data_shape))


def _taking_z(method):
    """`method` as a function of one argument named `z`, the ONNX input's name."""

    def network(z):
        return method(z)

    return network


def _latent_layers(model: VAE) -> list:
    """The model's `tfvae.priors.Hierarchical` priors, nearest to x first (z2's, z3's)."""
    layers, prior = [], model.prior_layer
    while prior.has_latents:
        layers.append(prior)
        prior = prior.prior
    return layers


def _layer_networks(model: VAE, components, seed) -> dict[str, tuple]:
    """`{component: (tf.function, parity inputs)}` of each layer above z1, for the kinds
    in `components`: decoder_K, z_K `(batch, upper_dim)` -> p(z_{K-1}|z_K)'s parameters,
    checked on z_K ~ p(z_K); and encoder_K, z_{K-1} `(batch, latent_dim)` ->
    q(z_K|z_{K-1})'s, on z_{K-1} ~ p(z_{K-1})."""
    networks = {}
    for depth, layer in enumerate(_latent_layers(model), start=2):
        specs = {
            "decoder": [tf.TensorSpec([None, layer.upper_dim], tf.float32, name="z")],
            "encoder": [tf.TensorSpec([None, layer.latent_dim], tf.float32, name="z")],
        }
        # Parity inputs: z_K ~ p(z_K) for the decoder, z_{K-1} ~ p(z_{K-1}) for the encoder.
        samplers = {"decoder": layer.prior.sample, "encoder": layer.sample}
        methods = {"decoder": layer.conditional_parameters, "encoder": layer.posterior_parameters}
        for kind in components:
            networks[f"{kind}_{depth}"] = (
                tf.function(_taking_z(methods[kind]), input_signature=specs[kind]),
                {"z": np.asarray(samplers[kind](_PARITY_SAMPLES, seed), dtype=np.float32)},
            )
    return networks


def export_model(
    model: VAE,
    out_dir=None,
    saved_model_dir=None,
    version: int = 1,
    opset: int = 17,
    components=COMPONENTS,
    atol: float = 1e-4,
    x_reference=None,
    data_range=None,
    name: str | None = None,
    weights: str = "float32",
    weights_atol: float = 0.1,
) -> Path:
    """Exports `model` as a SavedModel and an ONNX bundle, after checking their parity.

    Args:
        model: a built `tfvae.VAE` (trained, or at least called on data).
        out_dir: the bundle folder (default `export/NAME`); replaced whole if tfvae
            wrote it (see `check_destinations`).
        saved_model_dir: the SavedModel base folder (default `saved_models/NAME`); the
            SavedModel goes to `saved_model_dir/VERSION/`, replacing that version only.
        version: the SavedModel version, a positive integer.
        opset: the ONNX opset.
        components: which networks to export, a non-empty subset of
            `("decoder", "encoder")`.
        atol: the largest max abs difference allowed between the Keras model and either
            export, on every output.
        x_reference: real data `(n, *data_shape)` for the encoder's parity check and its
            record in the manifest (default: the model's own samples).
        data_range: `(low, high)` data values shown as black and white in pictures
            (default: from the likelihood's support, else from `x_reference`).
        name: the model's name in default paths and the manifest (default `model.name`).
        weights: the precision of the ONNX networks' weights, "float32", "float16" or
            "int8" (`tfvae.precision`); the SavedModel stays float32. A reduced-precision
            network is converted from the float32 one once that has passed `atol`, and
            measured against the Keras model on the same inputs; the manifest records
            the precision and that error.
        weights_atol: the largest max abs difference allowed between the Keras model and
            a reduced-precision network, relative to the largest output magnitude when
            that exceeds 1 (E[x|z] of 16-count digits lies in [0, 16]).

    Returns:
        The bundle folder.

    Raises:
        ValueError: for invalid arguments or an unbuilt model.
        tfvae.outputs.OutputRefusedError: before any work, for a destination that holds
            anything tfvae did not write (see `check_destinations`).
        ExportParityError: when an export differs from the Keras model by more than atol
            (or a reduced-precision network by more than weights_atol).
    """
    import onnx
    import onnxruntime
    import tf2onnx

    if not isinstance(model, VAE):
        raise TypeError(f"Expected model to be a tfvae.VAE. Received: model={model!r}")
    if model.data_shape is None:
        raise ValueError(
            "Expected a built model: train it or call it on data before exporting. "
            f"Received: model={model.name!r} with no data shape."
        )
    components = tuple(components)
    if (
        not components
        or any(c not in COMPONENTS for c in components)
        or len(set(components)) != len(components)
    ):
        raise ValueError(
            f"Expected components to be a non-empty subset of {COMPONENTS}. "
            f"Received: components={components!r}"
        )
    version = validation.positive_int(version, "version")
    opset = validation.positive_int(opset, "opset")
    atol = validation.positive_float(atol, "atol")
    weights = precision.check(weights, "weights")
    weights_atol = validation.positive_float(weights_atol, "weights_atol")
    name = name or model.name
    # An unregistered family is refused before any work.
    families = _family_names(model, components)
    out_dir, saved_model_dir, version_dir = check_destinations(
        name, out_dir, saved_model_dir, version
    )

    functions = {"decoder": _decode_function(model), "encoder": _encode_function(model)}
    # In COMPONENTS' order: the first is also the SavedModel's `serving_default`.
    functions = {c: function for c, function in functions.items() if c in components}
    layers = _layer_networks(model, components, [0, 1])
    functions.update({component: function for component, (function, _) in layers.items()})
    rng = np.random.default_rng(0)
    z = np.asarray(model.prior_layer.sample(_PARITY_SAMPLES, [0, 0]), dtype=np.float32)
    condition = None  # any values exercise the graph
    if model.condition_shape is not None:
        condition = rng.random((_PARITY_SAMPLES, *model.condition_shape)).astype(np.float32)
    if x_reference is None:
        x_reference = np.asarray(model.sample(_PARITY_SAMPLES, seed=0, condition=condition))
    x = np.asarray(x_reference, dtype=np.float32)[
        rng.permutation(len(x_reference))[:_PARITY_SAMPLES]
    ]
    if x.shape[1:] != model.data_shape:
        raise ValueError(
            f"Expected x_reference of shape (n, *{model.data_shape}). "
            f"Received: x_reference.shape={np.shape(x_reference)}"
        )
    inputs = {"decoder": {"z": z}, "encoder": {"x": x}}
    inputs.update({component: feeds for component, (_, feeds) in layers.items()})
    if condition is not None:
        inputs["decoder"]["condition"] = condition
        inputs["encoder"]["condition"] = condition[: len(x)]
    expected = {c: _numpy(function(**inputs[c])) for c, function in functions.items()}

    def check(_):  # again right before each swap: both folders, before the first swap
        outputs.check_destination(out_dir, outputs.BUNDLE, "out_dir")
        outputs.check_destination(version_dir, outputs.SAVED_MODEL, "saved_model_dir/VERSION")

    with (
        atomic.directory(out_dir, check=check) as bundle_dir,
        atomic.directory(version_dir, check=check) as saved_model,
    ):
        _write_saved_model(model, functions, saved_model)
        outputs.write_marker(saved_model, outputs.SAVED_MODEL)
        loaded = tf.saved_model.load(str(saved_model))
        errors = {"saved_model": {}, "onnx": {}}
        io_names = {}
        for component, function in functions.items():
            signature = loaded.signatures[_signature(component)]
            feeds = {name: tf.constant(value) for name, value in inputs[component].items()}
            received = _numpy(signature(**feeds))
            errors["saved_model"][component] = _max_abs_error(expected[component], received)

            path = bundle_dir / f"{component}.onnx"
            tf2onnx.convert.from_function(
                function,
                input_signature=function.input_signature,
                opset=opset,
                output_path=str(path),
            )
            onnx.checker.check_model(str(path))
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            output_names = [output.name for output in session.get_outputs()]
            received = dict(zip(output_names, session.run(None, inputs[component]), strict=True))
            errors["onnx"][component] = _max_abs_error(expected[component], received)
            io_names[component] = {
                "file": path.name,
                "inputs": [spec.name for spec in function.input_signature],
                "outputs": sorted(output_names),
            }
        worst = max(e for by_format in errors.values() for e in by_format.values())
        if not worst <= atol:
            raise ExportParityError(errors, atol)
        reduced = {
            component: _converted_error(
                bundle_dir / io_names[component]["file"],
                weights,
                weights_atol,
                inputs[component],
                expected[component],
            )
            for component in io_names
            if weights != "float32"
        }
        record = {"precision": weights, "method": precision.METHODS[weights]}
        if reduced:
            record.update(max_abs_error=reduced, relative_atol=weights_atol)
        manifest = _manifest(
            model,
            families,
            name,
            opset,
            version,
            io_names,
            errors,
            atol,
            record,
            bundle_dir,
            _display_range(model, x, data_range),
        )
        bundle.write_manifest(bundle_dir, manifest)
    return out_dir


def check_destinations(
    name: str, out_dir=None, saved_model_dir=None, version: int = 1
) -> tuple[Path, Path, Path]:
    """The folders `export_model` writes, once `tfvae.outputs` accepts each of them.

    Args:
        name: the model's name in the default paths.
        out_dir: the bundle folder (default `export/NAME`): absent, empty, or a bundle
            that tfvae wrote.
        saved_model_dir: the SavedModel base folder (default `saved_models/NAME`): absent,
            empty, a model folder, or a folder of SavedModel versions that tfvae wrote.
        version: the SavedModel version; `saved_model_dir/VERSION` is absent, empty or a
            SavedModel version that tfvae wrote.

    Returns:
        `(out_dir, saved_model_dir, saved_model_dir / str(version))`.

    Raises:
        tfvae.outputs.OutputRefusedError: for a destination that holds anything tfvae did
            not write, a file, the working or home folder, or overlapping destinations.

    Example:
        >>> bundle, base, version_dir = check_destinations("digits")  # before training
    """
    version = validation.positive_int(version, "version")
    out_dir = Path(out_dir or Path("export") / name)
    saved_model_dir = Path(saved_model_dir or Path("saved_models") / name)
    version_dir = saved_model_dir / str(version)
    outputs.check_destination(out_dir, outputs.BUNDLE, "out_dir")
    outputs.check_destination(saved_model_dir, outputs.SAVED_MODEL_BASE, "saved_model_dir")
    outputs.check_destination(version_dir, outputs.SAVED_MODEL, "saved_model_dir/VERSION")
    outputs.check_apart({"out_dir": out_dir, "saved_model_dir": saved_model_dir})
    return out_dir, saved_model_dir, version_dir


def _write_saved_model(model, functions, path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for component, function in functions.items():  # the first is `serving_default`
        archive.add_endpoint(_signature(component), function, function.input_signature)
    archive.write_out(str(path), verbose=False)


def _numpy(outputs) -> dict[str, np.ndarray]:
    return {key: np.asarray(value) for key, value in outputs.items()}


def _max_abs_error(expected: dict, received: dict) -> float:
    if set(expected) != set(received):
        raise ValueError(
            f"Expected exported outputs {sorted(expected)}. Received: {sorted(received)}"
        )
    return max(float(np.max(np.abs(expected[k] - received[k]), initial=0.0)) for k in expected)


def _converted_error(path: Path, weights: str, weights_atol: float, inputs, expected) -> float:
    """Converts the ONNX network at `path` to `weights` precision and returns its max abs
    error against `expected`, the Keras model's outputs on `inputs`.

    Raises:
        ExportParityError: the error exceeds `weights_atol` times the largest output
            magnitude, or 1 if that is smaller.
    """
    import onnxruntime

    precision.convert(path, weights)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    received = dict(zip(names, session.run(None, inputs), strict=True))
    error = _max_abs_error(expected, received)
    tolerance = weights_atol * max(1.0, *(float(np.max(np.abs(v))) for v in expected.values()))
    if not error <= tolerance:
        raise ExportParityError({weights: {path.stem: error}}, tolerance)
    return error


def _display_range(model: VAE, x: np.ndarray, data_range) -> list[float]:
    """`data_range`, else the likelihood's bounded support, else the range of `x`."""
    if data_range is None:
        data_range = model.likelihood.display_range() or (x.min(), x.max())
    return list(validation.value_range(data_range, "data_range"))


def _family_names(model: VAE, components) -> dict:
    """The registered names of the model's families, which the runtime looks up, and the
    manifest's record of the prior (`_prior_entry`), with the networks of `components`.

    Raises:
        ValueError: for a family that is not registered under a name of its own (e.g.
            an unregistered subclass of `Bernoulli`, which would be sampled as one).
    """
    return {
        "likelihood": likelihoods.registry.name_of(model.likelihood),
        "prior": _prior_entry(model.prior_layer, 2, components),
        "posterior": posteriors.registry.name_of(model.posterior),
    }


def _prior_entry(prior, depth: int, components) -> dict:
    """The manifest's record of p(z_{depth-1}): its family and parameters, and for a
    hierarchical prior the chain above it: the size of z_depth, the families of
    p(z_{depth-1}|z_depth) and q(z_depth|z_{depth-1}), their networks of `components`
    (`{"decoder": "decoder_K", "encoder": "encoder_K"}`), and p(z_depth)."""
    entry = {
        "family": priors.registry.name_of(prior),
        "parameters": {k: v.tolist() for k, v in prior.parameters().items()},
    }
    if prior.has_latents:
        entry.update(
            upper_dim=prior.upper_dim,
            conditional={
                "family": posteriors.registry.name_of(prior.conditional),
                "parameters": list(prior.conditional.param_names),
            },
            posterior={
                "family": posteriors.registry.name_of(prior.posterior),
                "parameters": list(prior.posterior.param_names),
            },
            networks={kind: f"{kind}_{depth}" for kind in components},
            prior=_prior_entry(prior.prior, depth + 1, components),
        )
    return entry


def _manifest(
    model, families, name, opset, version, io_names, errors, atol, weights, bundle_dir, data_range
) -> dict:
    import onnx
    import tf2onnx

    return {
        "format": outputs.BUNDLE.format,
        "name": name,
        "versions": {
            "tfvae": tfvae.__version__,
            "tensorflow": tf.__version__,
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
        },
        "opset": opset,
        "latent_dim": model.latent_dim,
        "condition_shape": None if model.condition_shape is None else list(model.condition_shape),
        "data": {"shape": list(model.data_shape), "dtype": "float32", "range": data_range},
        "likelihood": {
            "family": families["likelihood"],
            "parameters": list(model.likelihood.param_names),
            "constants": model.likelihood.constants(),
            "support": model.likelihood.support_bounds(),  # checked by tfvae.runtime
        },
        "prior": families["prior"],
        "posterior": {
            "family": families["posterior"],
            "parameters": list(model.posterior.param_names),
        },
        "onnx": io_names,
        "saved_model": {
            "version": version,
            "signatures": sorted(map(_signature, io_names)) + ["serving_default"],
        },
        "files": bundle.file_digests(bundle_dir, (entry["file"] for entry in io_names.values())),
        "parity": {"atol": atol, "max_abs_error": errors},
        "weights": weights,  # the networks' precision and their error against Keras
    }
