"""Imports go down the layers of the library, never up: every module of `emoconf_tf`, parsed, imports only modules
of its own layer or a lower one (module-level and function-level imports alike; `if TYPE_CHECKING:` imports,
which never run, excepted)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emoconf_tf"

LAYERS = (
    ("errors", "atomic", "tensorflow_import"),
    ("filtering", "thresholds", "targets", "metrics", "selective", "adaptive", "corpus", "feature_sets", "synthetic",
     "extraction", "row_batches"),
    ("settings", "folds"),
    ("losses", "models", "epoch_loop", "training", "datasets"),
    ("scores",),
    ("evaluation",),
    ("serving",),
    ("benchmarks", "cli"),
)
"""Low to high, by module path prefix (`scores` covers `scores.registry`; the longest prefix decides)."""
EXEMPT = ("emoconf_tf", "emoconf_tf.__main__")
"""The package's `__init__` only re-exports lazily, by name; `__main__` only calls the CLI."""

_LAYER_OF_PREFIX = {f"emoconf_tf.{prefix}": level for level, prefixes in enumerate(LAYERS) for prefix in prefixes}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int | None:
    """The layer of `module` (a dotted name), by its longest listed prefix; None if no prefix is listed."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        level = _LAYER_OF_PREFIX.get(".".join(parts[:end]))
        if level is not None:
            return level
    return None


def _lazy_public_names() -> dict[str, str]:
    """`emoconf_tf.__init__`'s `_PUBLIC`: public name -> the module it is imported from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_PUBLIC" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("emoconf_tf/__init__.py has no _PUBLIC map")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement that runs, at any depth, skipping the bodies of `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports_of(child)
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _imports(node)


def imported_modules(module: str, path: Path) -> list[tuple[str, int]]:
    """The `emoconf_tf` modules `module` imports, `(dotted name, line)`: `from X import name` counts as importing
    `X.name` when that is a module, and `from emoconf_tf import Name` as the module `Name` lazily comes from."""
    public = _lazy_public_names()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: from package levels up
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            if candidate in MODULES:
                found.append((candidate, node.lineno))
            elif base == "emoconf_tf" and alias.name in public:
                found.append((public[alias.name], node.lineno))
            else:
                found.append((base, node.lineno))
    return [(name, line) for name, line in dict.fromkeys(found)
            if name.split(".")[0] == "emoconf_tf" and name not in EXEMPT]


def test_every_module_has_a_layer():
    unplaced = [module for module in MODULES if module not in EXEMPT and layer(module) is None]
    assert not unplaced, f"modules in no layer of tests/test_layers.py: {unplaced}"


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for module, path in MODULES.items():
        if module in EXEMPT or layer(module) is None:
            continue
        for imported, line in imported_modules(module, path):
            if layer(imported) is not None and layer(imported) > layer(module):
                upward.append(f"{module} (layer {layer(module)}) -> {imported} (layer {layer(imported)}, line {line})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("module, expected", [
    ("emoconf_tf.scores.registry", 4), ("emoconf_tf.scores", 4), ("emoconf_tf.evaluation.unit", 5),
    ("emoconf_tf.selective", 1), ("emoconf_tf.settings", 2), ("emoconf_tf.cli.main", 7), ("emoconf_tf.nope", None),
])
def test_a_module_takes_the_layer_of_its_longest_listed_prefix(module, expected):
    assert layer(module) == expected


def test_imports_are_found_at_every_depth_but_not_under_type_checking(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from emoconf_tf.errors import EmoconfError\n"
        "if TYPE_CHECKING:\n"
        "    from emoconf_tf.serving import export\n"
        "def f():\n"
        "    from emoconf_tf import run_protocol\n"
        "    import emoconf_tf.scores.registry\n"
    )
    assert imported_modules("emoconf_tf.example", source) == [
        ("emoconf_tf.errors", 2), ("emoconf_tf.evaluation.protocol", 6), ("emoconf_tf.scores.registry", 7)]
