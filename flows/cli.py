"""The `sentinel` command line (OUTPUTS.md).

Exit status: 0 on success; 2 for bad arguments or input that the batch refuses (one line
naming the file and the problem); 1 for anything else. Subcommands import their machinery
lazily so that `sentinel --help` stays fast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import traceback
from pathlib import Path

from data_contracts.errors import RefusedInput
from data_contracts.ids import mask_ids_in_text

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

    s = run_batch(input_dir=Path(a.input), warehouse=Path(a.warehouse), out_dir=Path(a.out), as_of=a.as_of,
                  xlsx=a.xlsx, mask_ids=a.mask_ids, retrain=a.retrain)
    st = s["warnings"]["statuses"]
    print(f"batch {s['batch_id']} of {s['as_of']}: {st.get('new', 0)} new, {st.get('open', 0)} open warnings; "
          f"lists in {a.out}")
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from flows.serve import serve

    serve(a.cron, Path(a.input), Path(a.warehouse), Path(a.out), timezone=a.timezone, xlsx=a.xlsx, mask_ids=a.mask_ids)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from flows.nightly import run_batch
    from synthetic.calendar import DEFAULT_AS_OF
    from synthetic.city import generate

    root = Path(a.dir)
    landing, warehouse, out = root / "landing", root / "warehouse.duckdb", root / "out"
    key = generate(persons=a.persons, seed=a.seed, out=landing, as_of=DEFAULT_AS_OF)
    for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        stale.unlink(missing_ok=True)  # the demo starts from an empty warehouse every time
    s = run_batch(input_dir=landing, warehouse=warehouse, out_dir=out, as_of=DEFAULT_AS_OF, xlsx=True)
    st = s["warnings"]["statuses"]
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    print(f"""
sample city   {landing}  ({a.persons:,} persons; answer key {key})
warehouse     {warehouse}  (batch {s['batch_id']} of {s['as_of']}: {st.get('new', 0)} warnings)
lists         {out / 'warnings.csv'}
              {out / 'lists'}/<county>/<township>.csv, and one .xlsx per county
run summary   {out / 'summary.md'}
notebooks     {notebooks}
  open them:  .venv/bin/jupyter lab notebooks/morning_review.ipynb
              (they read $SENTINEL_WAREHOUSE, by default demo/warehouse.duckdb, read-only)""")
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


def cmd_audit(a: argparse.Namespace) -> int:
    from oversight import audit, report

    if not Path(a.warehouse).is_file():
        raise RefusedInput(a.warehouse, "no such warehouse")
    res = report.write(audit.audit_warehouse(a.warehouse, answer_key=a.answer_key), Path(a.out))
    print(f"audit: {res['flags']} group(s) flagged; {len(res['files'])} tables and {res['charts']} charts in {a.out}")
    return 0


def cmd_explain(a: argparse.Namespace) -> int:
    from oversight.explain import UnknownWarning, explain_warehouse

    if not Path(a.warehouse).is_file():
        raise RefusedInput(a.warehouse, "no such warehouse")
    try:
        print(explain_warehouse(a.warehouse, a.warning_id, mask_ids=a.mask_ids))
    except UnknownWarning as e:
        raise RefusedInput(a.warehouse, str(e)) from None
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
    r.add_argument("--xlsx", action="store_true", help="also one .xlsx per county, a sheet per township")
    r.add_argument("--mask-ids", action="store_true", help="mask ID numbers in the lists (first 6, last 4 kept)")
    r.add_argument("--retrain", action="store_true", help="refit the scorer instead of using the kept model")
    r.set_defaults(func=cmd_run)

    sv = sub.add_parser("serve", help="run the nightly batch on a cron schedule until stopped")
    sv.add_argument("--cron", required=True, help='e.g. "0 2 * * *"')
    sv.add_argument("--timezone", default="Asia/Shanghai")
    sv.add_argument("--input", required=True)
    sv.add_argument("--warehouse", required=True)
    sv.add_argument("--out", required=True)
    sv.add_argument("--xlsx", action="store_true")
    sv.add_argument("--mask-ids", action="store_true")
    sv.set_defaults(func=cmd_serve)

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

    au = sub.add_parser("audit", help="outcome audit: warning rates and confirmed shares by county, township, "
                                      "program, sex and age band, with flagged groups")
    au.add_argument("--warehouse", required=True, help="DuckDB file (read only)")
    au.add_argument("--out", required=True, help="directory for the CSV per view, the charts and audit.md")
    au.add_argument("--answer-key", default=None,
                    help="a generated city's answer key: compare each group with the planted anomalies")
    au.set_defaults(func=cmd_audit)

    ex = sub.add_parser("explain", help="everything held on why one warning exists, in Chinese and English")
    ex.add_argument("warning_id", help="the warning's id (预警编号), e.g. W0123456789ABCDEF")
    ex.add_argument("--warehouse", required=True, help="DuckDB file (read only)")
    ex.add_argument("--mask-ids", action="store_true",
                    help="mask every ID number other than the person concerned's (first 6, last 4 kept)")
    ex.set_defaults(func=cmd_explain)
    return p


def _release(e: BaseException) -> None:
    """Drop the failed batch's frames (they hold DuckDB objects) before the interpreter exits, so
    that its shutdown stays quiet."""
    import gc

    e.__traceback__ = None
    e.__context__ = e.__cause__ = None
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not a.verbose and a.command in ("run", "demo", "feedback"):
        # a batch at the terminal prints one line (its result, or what it refused and why);
        # -v shows Prefect's progress. `serve` keeps Prefect's logging as configured.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    try:
        return a.func(a)
    except RefusedInput as e:
        print(f"sentinel: {mask_ids_in_text(str(e))}", file=sys.stderr)
        _release(e)
        return 2
    except (FileNotFoundError, NotADirectoryError) as e:
        # bad arguments: name the problem in one line (no ID numbers are in these messages)
        print(f"sentinel: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # anything else: one line, exit 1 (the traceback with -v), ID numbers masked
        if a.verbose:
            log.error("failed: %s", mask_ids_in_text(traceback.format_exc()))
        print(f"sentinel: {type(e).__name__}: {mask_ids_in_text(str(e))}", file=sys.stderr)
        _release(e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
