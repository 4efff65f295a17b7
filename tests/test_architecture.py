"""The layering of docs/architecture.md, checked on the real import graph of the package.

Every `import` and `from ... import` of every module (top level or inside a function) is read
with `ast`; a new edge that breaks a rule fails here with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "contra_bc"

# The subcommands' own modules. Everything else is shared (formats, emulator, window, replay
# verification, model, loader, bots, charts, ui, ...), and the CLI sits on top of all.
SUBCOMMANDS = {
    "record": ("contra_bc.record",),
    "downsample-check": ("contra_bc.downsample",),
    "annotate": ("contra_bc.annotate",),
    "build-dataset": ("contra_bc.dataset.build", "contra_bc.dataset.quality"),
    "train": ("contra_bc.train",),
    "play": ("contra_bc.play",),
    "causality-score": ("contra_bc.causality",),
    "report": ("contra_bc.report",),
    "import": ("contra_bc.importer",),
}
TOP = ("contra_bc.cli", "contra_bc.__main__")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import of contra_bc modules in one file."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from contra_bc import movies` imports the module contra_bc.movies
            found += [(f"{base}.{alias.name}" if (PACKAGE.parent / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()
                       or (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).is_dir() else base, node.lineno)
                      for alias in node.names]
    return [(name, line) for name, line in found if name == "contra_bc" or name.startswith("contra_bc.")]


def owner(module: str) -> str | None:
    """The subcommand a module belongs to, "cli", or None (shared)."""
    if module in TOP:
        return "cli"
    for command, prefixes in SUBCOMMANDS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return command
    return None


def graph() -> list[tuple[str, str, str, int]]:
    """(importer, imported, file, line) over the whole package."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for target, line in imports(path):
            edges.append((module_name(path), target, str(path.relative_to(ROOT)), line))
    return edges


def test_the_graph_is_read():
    """The walker sees the edges we know exist (so the rules below are not vacuously true)."""
    edges = {(a, b) for a, b, _, _ in graph()}
    assert ("contra_bc.play", "contra_bc.window") in edges
    assert ("contra_bc.record.scripted", "contra_bc.movies") in edges  # `from contra_bc import movies`
    assert ("contra_bc.formats.movies", "contra_bc.formats.atomic") in edges
    assert ("contra_bc.train", "contra_bc.dataset.loader") in edges
    assert owner("contra_bc.annotate.gemini") == "annotate" and owner("contra_bc.window") is None


def test_one_pacing_loop():
    """Every paced recorder ticks through contra_bc.pacing (one clock, one rule for late ticks)."""
    edges = {(a, b) for a, b, _, _ in graph()}
    paced = ("contra_bc.record.session", "contra_bc.record.scripted", "contra_bc.play")
    assert not [m for m in paced if (m, "contra_bc.pacing") not in edges]


def test_no_subcommand_imports_another():
    bad = [f"{file}:{line}: {a} ({owner(a)}) imports {b} ({owner(b)})" for a, b, file, line in graph()
           if owner(a) not in (None, "cli") and owner(b) not in (None, owner(a))]
    assert not bad, "\n".join(bad)


def test_shared_modules_import_no_subcommand_and_not_the_cli():
    bad = [f"{file}:{line}: shared {a} imports {b} ({owner(b)})" for a, b, file, line in graph()
           if owner(a) is None and owner(b) is not None]
    assert not bad, "\n".join(bad)


def test_formats_depend_only_on_formats_and_errors():
    """The on-disk formats are the bottom layer: readable without the emulator, torch or the CLI."""
    allowed = ("contra_bc", "contra_bc.errors")
    bad = [f"{file}:{line}: {a} imports {b}" for a, b, file, line in graph()
           if a.startswith("contra_bc.formats") and not (b.startswith("contra_bc.formats") or b in allowed)]
    assert not bad, "\n".join(bad)


# options a command declares itself because they are no setting of the command's work
OWN_OPTIONS = {"train": {"--config", "--resume", "--json"}}


def test_every_option_is_a_config_field_and_every_field_an_option():
    """Options are declared once (contra_bc/config.py): each command's options are exactly the fields of
    its config class that carry flags, with the same flags and help; nothing is declared twice."""
    import dataclasses

    import typer.main

    from contra_bc.cli import app
    from contra_bc.options import option_fields

    group = typer.main.get_command(app)
    commands = []
    for name, cmd in group.commands.items():  # `import` is a group of commands
        subs = getattr(cmd, "commands", None)
        commands += [(f"{name} {sub}", c) for sub, c in subs.items()] if subs else [(name, cmd)]
    checked = 0
    for name, cmd in commands:
        cls = getattr(cmd.callback, "config_class", None)
        assert cls is not None, f"`{name}` declares its options outside contra_bc/config.py"
        options = {p.opts[0]: p for p in cmd.params if p.param_type_name == "option"}
        fields = {f.metadata["flags"][0].split("/")[0]: f for f in option_fields(cls)}
        own = OWN_OPTIONS.get(name, set())
        assert set(options) - own == set(fields), (name, set(options) ^ set(fields))
        for flag, f in fields.items():
            assert f.metadata["help"] in (options[flag].help or ""), (name, flag)
            assert f.name in {x.name for x in dataclasses.fields(cls)}
        checked += 1
    assert checked == 14  # games, record, replay-verify, downsample-check, annotate, build-dataset, train, play,
    #                       causality-score, render, export, report, import smb, import frames


def test_formats_need_no_torch_and_no_emulator():
    """formats/ reads every artefact without the emulator, and uses torch only through safetensors (checkpoints)."""
    bad = []
    for path in sorted((PACKAGE / "formats").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                if top in ("torch", "stable_retro", "retro", "typer", "rich", "google") or (
                        name.startswith("safetensors") and path.name != "checkpoint.py"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not bad, "\n".join(bad)
