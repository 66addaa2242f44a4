"""The layout's rules, read from the source (DEVELOPERS.md, "Layout"): imports run one way; SQL
files are read by one loader; transactions go through one helper; tables are defined in
sql/warehouse/, not in Python strings. Each test names the file and line that breaks its rule."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# which packages each package may import (flows/ orchestrates: it may import them all)
MAY_IMPORT = {
    "data_contracts": set(),
    "synthetic": {"data_contracts"},
    "rules": {"data_contracts"},
    "models": {"data_contracts"},
    "oversight": {"data_contracts", "rules", "models"},
    "casework": {"data_contracts", "rules", "models", "oversight"},
    "flows": {"data_contracts", "synthetic", "rules", "models", "oversight", "casework"},
}
PACKAGES = [p for p in MAY_IMPORT if (ROOT / p).is_dir()]


def sources(packages=PACKAGES):
    for pkg in packages:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def strings(path: Path):
    """(line, text) of every string constant of a module (docstrings included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def test_the_rooms_exist():
    assert {"data_contracts", "rules", "models", "flows", "casework", "oversight"} <= set(PACKAGES)


def test_imports_run_one_way():
    wrong = []
    for f in sources():
        pkg = f.relative_to(ROOT).parts[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top in MAY_IMPORT and top != pkg and top not in MAY_IMPORT[pkg]:
                    wrong.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_sql_files_are_read_by_the_one_loader():
    """Only data_contracts/warehouse.py opens .sql files (it checks them: one statement, named
    after what it creates)."""
    wrong = [f"{f.relative_to(ROOT)}:{i}" for f in sources() if f.name != "warehouse.py"
             for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"\.sql\b.*(read_text|open\()|(read_text|open\().*\.sql\b", line)]
    assert not wrong, "\n".join(wrong)


def test_transactions_go_through_the_one_helper():
    wrong = [f"{f.relative_to(ROOT)}:{i}" for f in sources() if f.name != "warehouse.py"
             for i, text in strings(f) if re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", text, re.I)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("allowed", [{
    # the warehouse contract's own temp table of POLICY.md's severities
    "data_contracts/warehouse.py",
    # raw_<extract> / stg_<extract>: their columns are the extract catalogue's (data_contracts/extracts.py)
    "data_contracts/load.py",
}])
def test_no_table_is_defined_in_a_python_string(allowed):
    wrong = [f"{f.relative_to(ROOT)}:{i}" for f in sources()
             if str(f.relative_to(ROOT)) not in allowed
             for i, text in strings(f)
             if re.search(r"\bCREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?TABLE\b", text, re.I)
             and not text.lstrip().startswith(("(Re)create", "Create"))]  # prose in a docstring
    assert not wrong, "\n".join(wrong)


def test_every_warehouse_table_is_documented():
    doc = (ROOT / "DEVELOPERS.md").read_text(encoding="utf-8")
    from data_contracts import warehouse

    missing = [t for t in warehouse.tables() if f"`{t}`" not in doc and f"`{t}(" not in doc]
    assert not missing, f"DEVELOPERS.md does not describe {missing}"


def test_rows_are_inserted_by_column_name():
    """A warehouse made by an earlier version gains new columns at the end of a table (warehouse.ensure):
    a row inserted by position would land in the wrong columns. Every INSERT names its columns."""
    positional = re.compile(r"\bINSERT\s+INTO\s+\w+\s+(?!BY\s+NAME\b|\()", re.I)
    texts = [(f, i, t) for f in sources() for i, t in strings(f)]
    texts += [(f, 1, warehouse_sql) for f in sorted((ROOT / "sql").rglob("*.sql"))
              for warehouse_sql in [f.read_text(encoding="utf-8")]]
    allowed = {"data_contracts/warehouse.py"}  # its own temp table of POLICY.md's severities, made beside it
    wrong = [f"{f.relative_to(ROOT)}:{i}: {positional.search(t).group(0)}" for f, i, t in texts
             if positional.search(t) and str(f.relative_to(ROOT)) not in allowed]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_inside_a_package():
    """Modules of one package import each other one way too (a cycle hidden by an import inside a
    function is still a cycle)."""
    graph: dict[str, set[str]] = {}
    for f in sources():
        mod = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        pkg = mod.split(".")[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module.startswith(pkg + "."):
                graph.setdefault(mod, set()).add(node.module)
    def reach(start, seen=None):
        seen = set() if seen is None else seen
        for nxt in graph.get(start, ()):
            if nxt not in seen:
                seen.add(nxt)
                reach(nxt, seen)
        return seen
    cycles = sorted(m for m in graph if m in reach(m))
    assert not cycles, f"modules on an import cycle: {cycles}"
