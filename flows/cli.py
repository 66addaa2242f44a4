"""The `sentinel` command line (OUTPUTS.md).

Exit status: 0 on success; 2 for bad arguments or input that the batch refuses (one line
naming the file and the problem); 1 for anything else. Subcommands import their machinery
lazily so that `sentinel --help` stays fast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path

from data_contracts.errors import RefusedInput

log = logging.getLogger("sentinel")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _persons(text: str) -> int:
    n = int(text) if text.isdigit() else -1
    if n < 2_000:
        raise argparse.ArgumentTypeError(f"{text!r}: a city needs at least 2000 persons to hold every planted case")
    return n


def cmd_generate(a: argparse.Namespace) -> int:
    from synthetic.city import generate

    key = generate(persons=a.persons, seed=a.seed, out=Path(a.out), as_of=a.as_of)
    print(f"landing directory: {a.out}")
    print(f"answer key:        {key}")
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    from flows.nightly import run_batch

    run_batch(input_dir=Path(a.input), warehouse=Path(a.warehouse), out_dir=Path(a.out), as_of=a.as_of)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from synthetic.city import generate

    root = Path(a.dir)
    landing = root / "landing"
    key = generate(persons=a.persons, seed=a.seed, out=landing, as_of=None)
    print(f"sample city:  {landing}  ({a.persons:,} persons)")
    print(f"answer key:   {key}")
    try:
        from flows.nightly import run_batch
    except ImportError:
        print("the nightly batch is not built yet: stopping after generating")
        return 0
    warehouse, out = root / "warehouse.duckdb", root / "out"
    run_batch(input_dir=landing, warehouse=warehouse, out_dir=out, as_of=None)
    print(f"warehouse:    {warehouse}")
    print(f"outputs:      {out}")
    return 0


def cmd_feedback(a: argparse.Namespace) -> int:
    from flows.feedback import apply_feedback

    warehouse = Path(a.warehouse)
    if not warehouse.is_file():
        raise RefusedInput(warehouse, "no such warehouse")
    res = apply_feedback(warehouse, [Path(f) for f in a.files], returned_by=a.by)
    print(f"{res['conclusions_recorded']} conclusions recorded from {res['files']} file(s)"
          f" ({res['files_already_recorded']} already recorded)")
    return 0


def cmd_rules(a: argparse.Namespace) -> int:
    from rules.catalog import load_catalog
    from rules.docs import listing

    print(listing(load_catalog()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sentinel", description="welfare-sentinel: early warnings on benefit payments")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write a synthetic landing directory and its answer key")
    g.add_argument("--persons", type=_persons, required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--out", required=True, help="landing directory to write (the answer key goes beside it)")
    g.add_argument("--as-of", type=_date, default=None, help="batch date (default 2026-11-01)")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="one nightly batch: ingest, contracts, rules, scorer, warnings, lists")
    r.add_argument("--input", required=True, help="landing directory")
    r.add_argument("--warehouse", required=True, help="DuckDB file (created if missing)")
    r.add_argument("--out", required=True, help="directory for warnings.csv and lists/")
    r.add_argument("--as-of", type=_date, default=None, help="batch date (default: today)")
    r.set_defaults(func=cmd_run)

    f = sub.add_parser("feedback", help="record the verifiers' conclusions from returned lists (.csv or .xlsx)")
    f.add_argument("--warehouse", required=True)
    f.add_argument("--by", default=None, help="who returned the lists (default: the folder they are in)")
    f.add_argument("files", nargs="+")
    f.set_defaults(func=cmd_feedback)

    d = sub.add_parser("demo", help="make a sample city under ./demo/ and run one batch on it")
    d.add_argument("--dir", default="demo")
    d.add_argument("--persons", type=_persons, default=20_000)
    d.add_argument("--seed", type=int, default=2026)
    d.set_defaults(func=cmd_demo)
    ru = sub.add_parser("rules", help="list the rule catalog (rules/*.yaml; documented in rules/CATALOG.md)")
    ru.set_defaults(func=cmd_rules)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return a.func(a)
    except RefusedInput as e:
        print(f"sentinel: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError) as e:
        # bad arguments: name the problem in one line (no ID numbers are in these messages)
        print(f"sentinel: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
