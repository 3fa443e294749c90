"""Rules the code keeps: the stack's public APIs only, nothing standing in for a module, no
Unix-only module in the package (it must import on Windows too), and no module too long to
read (split it before adding to it). Each check is shown to fail on a sample."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("benchmarks/*.py"),
           *ROOT.glob("tests/*.py")]
UNIX_ONLY = {"fcntl", "termios", "pwd", "resource", "grp", "posix"}
# Objects built to pass for a module (as a stand-in for mlflow.keras once was).
STAND_INS = {"SimpleNamespace", "ModuleType"}
# Non-blank lines a module of the package may hold (issue 26): past it, split the module.
MAX_MODULE_LINES = 250


def imported_names(tree: ast.AST) -> list[list[str]]:
    """Return each dotted name the code imports or uses, split at its dots."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names += [[*node.module.split("."), alias.name] for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.Attribute):
            names.append(ast.unparse(node).split("."))
    return names


def private_names(source: str) -> list[str]:
    """Return the private MLflow and Keras names the code reaches: a part starting with
    '_', or Keras' implementation package keras.src."""
    found = []
    for parts in imported_names(ast.parse(source)):
        if parts[0] == "mlflow":
            found += [".".join(parts) for part in parts if part.startswith("_")]
        elif parts[0] == "keras" and (parts[1:2] == ["src"] or any(
                part.startswith("_") for part in parts)):
            found.append(".".join(parts))
    return found


def stand_ins(source: str) -> list[str]:
    """Return the calls that build an object standing in for a module."""
    return [ast.unparse(node) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call)
            and ast.unparse(node.func).split(".")[-1] in STAND_INS]


def unix_only_imports(source: str) -> list[str]:
    """Return the Unix-only standard modules the code imports."""
    return sorted({parts[0] for parts in imported_names(ast.parse(source))
                   if parts[0] in UNIX_ONLY})


def too_long(sources: dict[str, str], limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """Return the non-blank line count of each source longer than `limit`."""
    counts = {name: sum(1 for line in text.splitlines() if line.strip())
              for name, text in sources.items()}
    return {name: count for name, count in counts.items() if count > limit}


def test_no_code_reaches_private_mlflow_or_keras_names() -> None:
    assert len(SOURCES) > 20
    found = {str(path): private_names(path.read_text(encoding="utf-8")) for path in SOURCES}
    assert {path: names for path, names in found.items() if names} == {}


def test_nothing_stands_in_for_a_module() -> None:
    found = {str(path): stand_ins(path.read_text(encoding="utf-8")) for path in SOURCES}
    assert {path: calls for path, calls in found.items() if calls} == {}


def test_the_package_imports_no_unix_only_module() -> None:
    package = list(ROOT.glob("pipeline/**/*.py"))
    found = {str(path): unix_only_imports(path.read_text(encoding="utf-8"))
             for path in package}
    assert {path: modules for path, modules in found.items() if modules} == {}


def test_no_module_of_the_package_is_too_long_to_read() -> None:
    package = {str(path): path.read_text(encoding="utf-8")
               for path in ROOT.glob("pipeline/**/*.py")}
    assert len(package) > 30
    assert too_long(package) == {}


def test_each_check_can_fail() -> None:
    assert private_names("from mlflow.models.utils import _save_example\n") == [
        "mlflow.models.utils._save_example"]
    assert private_names("from keras.src.trainers import x\n") == ["keras.src.trainers.x"]
    assert private_names("import keras\nkeras.Model._compile_config\n") == [
        "keras.Model._compile_config"]
    assert private_names("import keras\nkeras.layers.Dense\nimport mlflow.keras\n") == []
    assert stand_ins("from types import SimpleNamespace\nm = SimpleNamespace(a=1)\n") == [
        "SimpleNamespace(a=1)"]
    assert unix_only_imports("import fcntl\nfrom resource import getrusage\n") == [
        "fcntl", "resource"]
    assert too_long({"a.py": "x = 1\n\n" * 3, "b.py": "x = 1\n" * 2}, limit=2) == {"a.py": 3}
