"""Tests for tfvae.registry: the generic name -> class Registry behind every family.

The family-specific registries (which names exist, what `likelihoods.get` returns) are
tested beside their families; here a toy registry pins down the generic behaviour.
"""

import json

import keras
import pytest

from tfvae import likelihoods
from tfvae.registry import Registry


class Shape:
    """A toy family base: plain Python, serializable through its config."""

    def __init__(self, size=1):
        self.size = size

    def get_config(self):
        return {"size": self.size}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


shapes = Registry("shape", Shape)


@shapes.register("square")
class RegistryTestSquare(Shape):
    pass


@shapes.register("circle")
class RegistryTestCircle(Shape):
    pass


def test_names_are_sorted_and_classes_know_their_name():
    assert shapes.names() == ["circle", "square"]
    assert RegistryTestSquare.family == "square"
    assert RegistryTestCircle.family == "circle"


def test_get_by_name_returns_a_new_default_instance():
    first = shapes.get("square")
    second = shapes.get("square")

    assert type(first) is RegistryTestSquare and first.size == 1
    assert first is not second  # families may hold state (learnable priors): never shared


def test_get_passes_an_instance_through():
    circle = RegistryTestCircle(size=3)
    assert shapes.get(circle) is circle


def test_get_round_trips_a_serialized_config_through_json():
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(RegistryTestCircle(5))))

    restored = shapes.get(serialized)

    assert type(restored) is RegistryTestCircle and restored.size == 5


def test_get_rejects_a_serialized_family_of_another_kind():
    serialized = keras.saving.serialize_keras_object(likelihoods.Bernoulli())

    with pytest.raises(TypeError, match=r"Expected outline to be one of \['circle', 'square'\]"):
        shapes.get(serialized, argument="outline")


def test_unknown_name_lists_the_known_names_and_echoes_the_argument():
    with pytest.raises(ValueError) as info:
        shapes.get("triangle", argument="outline")

    message = str(info.value)
    assert "Unknown shape 'triangle'" in message
    assert "['circle', 'square']" in message
    assert "Received: outline='triangle'" in message


@pytest.mark.parametrize("identifier", [None, 3, ["square"], RegistryTestSquare])
def test_other_values_raise_type_error_naming_the_base_class(identifier):
    with pytest.raises(TypeError, match=r"or a Shape instance\. Received: shape=") as info:
        shapes.get(identifier)
    assert repr(identifier) in str(info.value)


def test_registering_a_name_twice_raises():
    class Another(likelihoods.Bernoulli):
        pass

    with pytest.raises(ValueError, match=r"'bernoulli' is already registered"):
        likelihoods.registry.register("bernoulli")(Another)
    assert likelihoods.get("bernoulli").__class__ is likelihoods.Bernoulli


def test_registering_a_non_subclass_raises():
    registry = Registry("likelihood", likelihoods.Likelihood)

    with pytest.raises(TypeError, match=r"Expected a subclass of Likelihood"):
        registry.register("plain")(type("Plain", (), {}))
    assert registry.names() == []


def test_name_of_refuses_an_unregistered_subclass_that_would_pass_for_its_parent():
    class Oval(RegistryTestCircle):
        pass

    assert shapes.name_of(RegistryTestCircle(2)) == "circle"
    assert Oval.family == "circle"  # inherited: why the name alone cannot be trusted
    with pytest.raises(ValueError, match=r"Expected a registered shape. Received: .*Oval"):
        shapes.name_of(Oval())


def test_class_of_lists_the_known_names():
    assert shapes.class_of("square") is RegistryTestSquare
    with pytest.raises(ValueError, match=r"Unknown shape 'oval'.*\['circle', 'square'\]"):
        shapes.class_of("oval")


def test_the_registry_imports_neither_keras_nor_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, tfvae.registry, tfvae.likelihoods, tfvae.posteriors, tfvae.objectives\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
