"""The package's import graph: no cycle, and no module imports from a layer above its own.

Imports inside functions count too (a lazy import is still a dependency). Layers, bottom first:

    0  errors, jsondoc, paths, schemas, catalogue, rules, assets, geometry,   vocabulary, helpers,
       heldout,
       run_config                                           the typed run config
    1  adapters                                             LoRA layers on the manifold point
    2  init, optim, peft_io                                  what acts on adapters
    3  methods, tasks, training                              a method = init x optimizer; data; the loop
    4  config                                                validation needs the trainer's rules
    5  worker                                                the process: run directory, events, CLI
    6  riemannlora (the package's lazy public names)

Before this test (issue 12): one cycle (config -> tasks.registry -> tasks.builtin_default ->
tasks.causal_lm -> config) and five upward imports (config, tasks.causal_lm, tasks.builtin_default and
training.device into worker.errors; tasks.causal_lm into config). After: none of either.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "riemannlora"
LAYERS = [
    {
        "errors",
        "jsondoc",
        "paths",
        "schemas",
        "catalogue",
        "rules",
        "assets",
        "geometry",
        "run_config",
        "method_rules",
        "heldout",
    },
    {"adapters"},
    {"init", "optim", "peft_io"},
    {"methods", "tasks", "training"},
    {"config"},
    {"worker"},
    {""},
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                module = (
                    ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
                )
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in mods else module or "")
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return next(i for i, group in enumerate(LAYERS) if top in group)


def test_every_module_has_a_layer():
    for name in modules():
        assert any((name.split(".")[1] if "." in name else "") in g for g in LAYERS), f"{name} has no layer"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{a} (layer {layer(a)}) -> {b} (layer {layer(b)})"
        for a, targets in import_graph().items()
        for b in targets
        if layer(b) > layer(a)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks can fail: a planted package with one of each is caught."""
    fake = tmp_path / "riemannlora"
    (fake / "tasks").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "tasks" / "__init__.py").write_text("")
    (fake / "tasks" / "a.py").write_text("from riemannlora.config import x\n")
    (fake / "config.py").write_text("def f():\n    from riemannlora.tasks import a\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    graph = import_graph()
    assert "riemannlora.config" in graph["riemannlora.tasks.a"]
    assert layer("riemannlora.config") > layer("riemannlora.tasks.a")
    assert "riemannlora.tasks.a" in graph["riemannlora.config"]


def test_validating_a_cpu_config_imports_no_torch():
    """`validate` (the CLI asks it before every run) stays quick: torch (seconds to import) is only
    needed to check an explicit accelerator. Measured by what is imported, not by time."""
    import os
    import subprocess
    import sys

    examples = Path(__file__).resolve().parents[2] / "examples"
    probe = (
        "import io, sys\n"
        "from riemannlora.worker.validate import validate_command\n"
        "codes = [validate_command(p, stdout=io.StringIO()) for p in sys.argv[1:]]\n"
        "print(codes, 'torch' in sys.modules)\n"
    )
    configs = [str(examples / f) for f in ("synthetic.rlora.json", "builtin-default.rlora.json")]
    out = subprocess.run(
        [sys.executable, "-P", "-c", probe, *configs],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    assert out.stdout.split() == ["[0,", "0]", "False"], out.stdout + out.stderr
