"""The house's rules, read from the code's own imports: rooms on floors with arrows that only run down, no import
circle, scripts that are entry points only (README "Development")."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top: a module imports from its own floor or the floors below it, never from a floor above.
FLOORS = [
    ["nestgen.cli", "nestgen.files", "nestgen.runtime", "nestgen.shipped", "nestgen.sharding", "nestgen.losses",
     "nestgen.models", "nestgen.data"],                # the NesT modules, the data, the basics
    ["nestgen.convert", "nestgen.drawing", "nestgen.explain"],  # checkpoints and formats, pictures, GradCAT
    ["nestgen.inference"],                             # sampling, prediction, projection
    ["nestgen.metrics"],                               # accuracy, FID (fid_base at its bottom)
    ["nestgen.training"],                              # the trainers and the relay
    ["nestgen.release", "nestgen.serving"],            # model cards and releases; the app
    ["nestgen.benchmarks"],                            # measurements of everything below
]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted((ROOT / "nestgen").rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The nestgen modules `path` imports, lazily imported ones and `if TYPE_CHECKING` ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nestgen"):
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in candidates if name in modules and name != "nestgen"}
    return found


def _floor(module: str) -> int:
    return next(i for i, rooms in enumerate(FLOORS) for room in rooms
                if module == room or module.startswith(room + "."))


def test_every_module_has_a_floor_and_imports_only_from_its_own_floor_or_below():
    modules = _modules()
    up = [(m, t) for m, path in modules.items() if m != "nestgen"
          for t in _imports(path, modules) if _floor(t) > _floor(m)]
    assert not up, f"arrows that run back up: {up}"


def test_no_import_circle():
    modules = _modules()
    graph = {m: _imports(path, modules) - {m} for m, path in modules.items()}
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError(f"import circle: {' -> '.join(path[path.index(module):] + [module])}")
        if module in done:
            return
        path.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_scripts_are_entry_points_that_import_no_script_and_leave_sys_path_alone():
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    for path in [*(ROOT / "scripts").glob("*.py"), ROOT / "app.py", *(ROOT / "nestgen").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & scripts, (path, "imports a script")
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in scripts, (path, "imports a script")
            if isinstance(node, ast.Attribute) and ast.unparse(node) == "sys.path":
                raise AssertionError(f"{path} edits or reads sys.path")
            if isinstance(node, ast.Name) and node.id == "__import__":
                raise AssertionError(f"{path} calls __import__")


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in [*(ROOT / "nestgen").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
                                                 ROOT / "app.py"]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_repository_root_is_named_in_one_place():
    """Library code that needs the checkout (configs, examples, the shipped models) takes nestgen.shipped.REPOSITORY:
    a module that counts `parents[...]` of its own file breaks when it moves (the benchmarks did)."""
    counting = [str(p.relative_to(ROOT)) for p in (ROOT / "nestgen").rglob("*.py")
                if p.name != "shipped.py" and ("__file__).resolve().parent" in p.read_text())]
    assert not counting, counting
