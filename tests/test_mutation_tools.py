"""The mutation-testing tools (tools/mutants.py, tools/bugs.py): mutants are valid one-place
changes, the untouchable parts stay untouched, and every named bug still applies."""

import ast
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

import mutate  # noqa: E402
from bugs import BUGS  # noqa: E402
from mutants import mutants_of  # noqa: E402

ROOT = TOOLS.parent
SAMPLE = '''"""A module docstring: 1 + 2."""


def area(width: int = 3, height=4) -> float:
    """A docstring: 5 - 6."""
    if width < 0:
        raise ValueError(f"width {width + 1} < 0")
    scale = -width * height
    check(scale)
    return tf.nn.softplus(scale, name="area") if ready else not done
'''


def changes(source):
    return sorted((m.operator, m.original, m.replacement) for m in mutants_of("s.py", source))


def test_each_operator_makes_its_change_and_nothing_else():
    expected = sorted(
        [
            ("comparison", "<", "<="),  # width < 0
            ("number", "0", "1"),
            ("sign", "-", ""),  # -width
            ("arithmetic", "*", "/"),
            ("statement", "check(scale)", "pass"),
            ("call", "check(scale)", "(scale)"),
            ("keyword", ', name="area"', ""),
            ("boolean", "ready", "not (ready)"),  # the conditional expression's test
            ("boolean", "not ", ""),  # not done
        ]
    )
    # Untouched: docstrings, the signature's annotations and defaults (3, 4), the raise.
    assert changes(SAMPLE) == expected


@pytest.mark.parametrize(
    "source, replacement",
    [
        ("x = a ** 2\n", ("*", "3")),
        ("x = a // b\n", ("/",)),
        ("x += 1\n", ("-=", "2")),
        ("y = a is not None\n", ("is",)),
        ("y = a not in b\n", ("in",)),
        ("y = a and b or c\n", ("and", "or")),
        ("y = -(a + b)\n", ("", "-")),
        ("y = f(True)\n", ("False", "(True)")),
    ],
)
def test_operators_find_their_token(source, replacement):
    assert sorted(m.replacement for m in mutants_of("s.py", source)) == sorted(replacement)


CORE_SOURCES = sorted(
    {path for patterns, _ in mutate.CORE.values() for path in mutate._sources(patterns)}
)


@pytest.mark.parametrize("path", CORE_SOURCES)
def test_every_mutant_of_a_core_module_parses_and_changes_it(path):
    source = (ROOT / path).read_text()
    tree = ast.dump(ast.parse(source))
    mutants = mutants_of(path, source)
    assert len({m.key for m in mutants}) == len(mutants)  # keys name one mutant each
    for mutant in mutants:
        mutated = mutant.apply(source)
        assert ast.dump(ast.parse(mutated)) != tree, mutant.key
        if "\n" not in mutant.original:  # the rest of the file keeps its line numbers
            assert mutated.count("\n") == source.count("\n"), mutant.key


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_every_named_bug_still_applies_once(bug):
    source = (ROOT / bug.path).read_text()
    assert source.count(bug.old) == 1
    assert bug.module in mutate.CORE and bug.path in mutate._sources(mutate.CORE[bug.module][0])
