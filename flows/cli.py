"""The `sentinel` command line (OUTPUTS.md).

Exit status: 0 on success; 2 for bad arguments or input that the batch refuses (one line
naming the file and the problem); 1 for anything else. Subcommands import their machinery
lazily so that `sentinel --help` stays fast.
"""
from __future__ import annotations

import argparse
import atexit
import datetime as dt
import difflib
import errno
import logging
import os
import shutil
import signal
import sys
import threading
import traceback
from pathlib import Path

from data_contracts.errors import RefusedInput
from data_contracts.ids import mask_ids_in_text
from flows.batch import Interrupted, begin_batch, command_line_process, committed, interrupt_handled, interrupted_by

log = logging.getLogger("sentinel")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _persons(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number of persons")
    n = int(text)
    if n < 2_000:
        raise argparse.ArgumentTypeError(f"{text!r}: a city needs at least 2000 persons to hold every planted case")
    return n


def _check_city_dir(out: Path, what: str) -> None:
    """`generate` and `demo` replace the folder they write only when it is new, empty, or a city they
    made before (recognised by the manifest written beside it)."""
    from synthetic.city import manifest_path

    if out.exists() and not out.is_dir():
        raise RefusedInput(out, f"{what} exists and is not a directory; choose a folder for the city")
    if out.is_dir() and any(out.iterdir()) and not manifest_path(out).exists():
        raise RefusedInput(out, f"{what} is not empty and is not a city generated before; "
                                "choose a new or empty folder (nothing in it was touched)")


def cmd_generate(a: argparse.Namespace) -> int:
    from synthetic.city import generate

    out = Path(a.out)
    _check_city_dir(out, "--out")
    key = generate(persons=a.persons, seed=a.seed, out=out, as_of=a.as_of)
    print(f"landing directory: {a.out}")
    print(f"answer key:        {key}")
    return 0


def _engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                   help="where the rules and the scorer's features run: duckdb (the warehouse, default) or spark "
                        "(README: Running on a Spark cluster)")
    p.add_argument("--spark-master", default=None, metavar="URL",
                   help="with --engine spark: the cluster, e.g. spark://host:7077 (default: SPARK_MASTER, else "
                        "SPARK_REMOTE for Spark Connect, else local[*])")
    p.add_argument("--stage-uri", default=None, metavar="URI",
                   help="with --engine spark: where the staged tables are written as Parquet for Spark to read, "
                        "a folder or hdfs://, s3a:// (default: WAREHOUSE.stage beside the warehouse)")


def cmd_run(a: argparse.Namespace) -> int:
    from flows.batch import batch_gate, check_engine, today

    paths = [Path(p).absolute() for p in (a.input, a.warehouse, a.out)]
    check_engine(a.engine, a.stage_uri, paths[0], paths[2], a.spark_master)
    as_of = a.as_of or today()
    with batch_gate(*paths, as_of, a.replay):  # refusals before Prefect is even imported
        from flows import prefect_api

        prefect_api.start_in_background()  # Prefect's temporary server starts while the batch's code loads
        from flows.launch import run_batch

        s = run_batch(*paths, as_of, xlsx=a.xlsx, mask_ids=a.mask_ids, retrain=a.retrain, replay=a.replay,
                      accept_shrunk_snapshot=a.accept_shrunk_snapshot, min_snapshot_share=a.min_snapshot_share,
                      engine=a.engine, spark_master=a.spark_master, stage_uri=a.stage_uri)
    st = s["warnings"]["statuses"]
    print(f"batch {s['batch_id']} of {s['as_of']}: {st.get('new', 0)} new, {st.get('open', 0)} open warnings; "
          f"lists in {a.out}{_quarantined(s['ingest'])}{_late_interrupt()}")
    return 0


def _quarantined(ingested: dict) -> str:
    """The rows tonight's ingest quarantined, for the result line: a night whose every payment was
    quarantined (a file of an unexpected layout) must not read like a quiet night."""
    counts = ingested.get("extracts", {}).values()
    held = sum(c["rows_quarantined"] for c in counts)
    if not held:
        return ""
    read = sum(c["rows_read"] for c in counts)
    worst = max(counts, key=lambda c: c["rows_quarantined"] / max(c["rows_read"], 1))
    return (f"; {held:,} of {read:,} rows read quarantined, {worst['rows_quarantined']:,} of {worst['rows_read']:,} "
            f"in {worst['extract']} (why: summary.md, table quarantine)")


def _late_interrupt() -> str:
    from flows.batch import interrupt_received_at_commit

    s = interrupt_received_at_commit()
    return f" (the {signal.Signals(s).name} came at the commit point: the batch was finished first)" if s else ""


def cmd_serve(a: argparse.Namespace) -> int:
    from flows.serve import serve

    serve(a.cron, Path(a.input), Path(a.warehouse), Path(a.out), timezone=a.timezone, xlsx=a.xlsx,
          mask_ids=a.mask_ids, ui_port=a.port, engine=a.engine, spark_master=a.spark_master, stage_uri=a.stage_uri)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from flows.batch import batch_gate
    from synthetic.calendar import DEFAULT_AS_OF
    from synthetic.city import generate

    root = Path(a.dir)
    landing, warehouse, out = root / "landing", root / "warehouse.duckdb", root / "out"
    demo_marker = root / ".sentinel-demo"
    from synthetic.city import manifest_path

    earlier = demo_marker.exists() or manifest_path(landing).exists()  # the latter: a demo of an earlier version
    if root.is_dir() and any(root.iterdir()) and not earlier:
        raise RefusedInput(root, "--dir is not empty and holds no earlier demo; choose a new or empty folder "
                                 "(nothing in it was touched)")
    _check_city_dir(landing, "the demo's landing folder")
    if out.is_dir() and not demo_marker.exists() and (out / "warnings.csv").exists():
        shutil.rmtree(out)  # an earlier version's demo output, without the marker a batch now writes
    root.mkdir(parents=True, exist_ok=True)
    demo_marker.write_text("a demo of welfare-sentinel: `sentinel demo` replaces this folder's contents\n")
    from flows import prefect_api

    prefect_api.start_in_background()  # Prefect's temporary server starts while the city is generated
    from flows.launch import run_batch

    key = generate(persons=a.persons, seed=a.seed, out=landing, as_of=DEFAULT_AS_OF)
    # a generated city knows its planted cases: the model card and the audit measure against them
    os.environ["SENTINEL_ANSWER_KEY"] = str(key)
    with batch_gate(landing.absolute(), warehouse.absolute(), out.absolute(), DEFAULT_AS_OF, replay=True):
        for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
            stale.unlink(missing_ok=True)  # the demo starts from an empty warehouse every time (under its lock)
        s = run_batch(input_dir=landing, warehouse=warehouse, out_dir=out, as_of=DEFAULT_AS_OF, xlsx=True)
    st = s["warnings"]["statuses"]
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    print(f"""
sample city   {landing}  ({a.persons:,} persons; answer key {key})
warehouse     {warehouse}  (batch {s['batch_id']} of {s['as_of']}: {st.get('new', 0)} warnings)
lists         {out / 'warnings.csv'}
              {out / 'lists'}/<county>/<township>.csv and .xlsx, and one .xlsx per county
run summary   {out / 'summary.md'}
notebooks     {notebooks}
  open them:  .venv/bin/jupyter lab notebooks/morning_review.ipynb
              (they read $SENTINEL_WAREHOUSE, by default demo/warehouse.duckdb, read-only)""")
    return 0


def cmd_feedback(a: argparse.Namespace) -> int:
    from casework.feedback import apply_feedback

    warehouse = Path(a.warehouse)
    if not warehouse.is_file():
        raise RefusedInput(warehouse, "no such warehouse")
    res = apply_feedback(warehouse, [Path(f) for f in a.files], returned_by=a.by)
    n, files = res["conclusions_recorded"], res["files"]
    print(f"{n} conclusion{'' if n == 1 else 's'} recorded from {files} file{'' if files == 1 else 's'}"
          f" ({res['files_already_recorded']} already recorded)")
    return 0


def cmd_rules(a: argparse.Namespace) -> int:
    from rules.catalog import load_catalog
    from rules.docs import listing

    print(listing(load_catalog()))
    return 0


AUDIT_MARKER = ".sentinel-audit"  # what an audit wrote into its --out (flows/batch.py mark_outputs)


def cmd_audit(a: argparse.Namespace) -> int:
    from flows.batch import StagedDir, check_output_dir, mark_outputs
    from oversight import audit, report

    if not Path(a.warehouse).is_file():
        raise RefusedInput(a.warehouse, "no such warehouse")
    out = Path(a.out).absolute()
    # as a batch's --out: new, empty, or the last audit's files unchanged (never a batch's outputs
    # or the warehouse's folder, whose files it would overwrite or mix with); written beside it and
    # swapped in whole once written, so that a failed or interrupted audit leaves the folder as it was
    check_output_dir(out, protected={"warehouse": Path(a.warehouse)}, marker=AUDIT_MARKER)
    result = audit.audit_warehouse(a.warehouse, answer_key=a.answer_key)
    with StagedDir(out) as staged:
        res = report.write(result, staged.path)
        mark_outputs(staged.path, AUDIT_MARKER)
        staged.commit()
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


def _cron(text: str) -> str:
    from prefect.client.schemas.schedules import CronSchedule  # Prefect's own validation of what it will run

    try:
        CronSchedule(cron=text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a cron expression: {text!r} (five fields, e.g. \"0 2 * * *\")"
                                         ) from None
    return text


def _timezone(text: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"not a time zone: {text!r} (e.g. Asia/Shanghai)") from None
    return text


def _port(text: str) -> int:
    n = int(text) if text.isdigit() else -1
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return n


VERBOSE_HELP = "log progress to stderr (accepted before or after the subcommand)"


class _Parser(argparse.ArgumentParser):
    """argparse, except that a command given an option it does not have says so first, with the one
    meant (``--ouput``: "unknown option --ouput; did you mean --out?"), where argparse said only
    that --out was missing."""

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and self._subparsers is None:  # a command's own options
            self._check_options(args)
        return super().parse_known_args(args, namespace)

    def _check_value(self, action, value):
        """argparse's check of a value with choices (a command, --engine), with the one meant:
        "invalid choice: 'rnu'; did you mean 'run'? (choose from ...)"."""
        if action.choices is not None and value not in action.choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in action.choices], n=1, cutoff=0.6)
            if close:
                choices = ", ".join(repr(c) for c in action.choices)
                raise argparse.ArgumentError(action, f"invalid choice: {value!r}; did you mean {close[0]!r}? "
                                                     f"(choose from {choices})")
        return super()._check_value(action, value)

    def _check_options(self, args: list[str]) -> None:
        known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
        for token in args:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            # an option, or an abbreviation of options (argparse takes one, and says an ambiguous one is)
            if not name.startswith("--") or any(k.startswith(name) for k in known):
                continue
            close = difflib.get_close_matches(name[2:], [k[2:] for k in known], n=1, cutoff=0.7)
            self.error(f"unknown option {name}" + (f"; did you mean --{close[0]}?" if close else ""))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sentinel", description="welfare-sentinel: early warnings on benefit payments")
    p.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        # -v after the subcommand too; SUPPRESS keeps it from resetting a -v given before
        c.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        return c

    g = command("generate", "write a synthetic landing directory and its answer key")
    g.add_argument("--persons", type=_persons, required=True, help="how many persons the city registers (>= 2000)")
    g.add_argument("--seed", type=int, default=1, help="random seed: the same seed writes the same bytes (default 1)")
    g.add_argument("--out", required=True, help="landing directory to write: new, empty, or a city generated "
                                                "before (the answer key and manifest go beside it)")
    g.add_argument("--as-of", type=_date, default=None, help="batch date YYYY-MM-DD (default 2026-11-01)")
    g.set_defaults(func=cmd_generate)

    r = command("run", "one nightly batch: ingest, contracts, rules, scorer, warnings, lists")
    r.add_argument("--input", required=True, help="landing directory (EXTRACTS.md)")
    r.add_argument("--warehouse", required=True, help="DuckDB file (created if missing)")
    r.add_argument("--out", required=True, help="directory for warnings.csv, lists/ and summary.md: new, empty, or "
                                                "a previous run's; never the landing directory, nor one holding it or the warehouse")
    r.add_argument("--as-of", type=_date, default=None,
                   help="batch date YYYY-MM-DD (default: today in SENTINEL_TIMEZONE, Asia/Shanghai)")
    r.add_argument("--replay", action="store_true",
                   help="allow an --as-of before the warehouse's last batch, or more than 3 days after today "
                        "(replaying nights)")
    r.add_argument("--accept-shrunk-snapshot", action="append", default=[], metavar="EXTRACT",
                   help="load this snapshot extract although it shrank implausibly (repeat for several)")
    r.add_argument("--min-snapshot-share", type=float, default=0.9, metavar="SHARE",
                   help="a snapshot with fewer rows than this share of the last one is refused (default 0.9)")
    r.add_argument("--xlsx", action="store_true", help="also one .xlsx per county, a sheet per township")
    r.add_argument("--mask-ids", action="store_true", help="mask ID numbers in the lists (first 6, last 4 kept)")
    r.add_argument("--retrain", action="store_true", help="refit the scorer instead of using the kept model")
    _engine_arguments(r)
    r.set_defaults(func=cmd_run)

    sv = command("serve", "run the nightly batch on a cron schedule until stopped (Ctrl-C)")
    sv.add_argument("--cron", required=True, type=_cron, help='when to run, a cron expression, e.g. "0 2 * * *"')
    sv.add_argument("--timezone", default="Asia/Shanghai", type=_timezone,
                    help="time zone of the cron expression (default Asia/Shanghai)")
    sv.add_argument("--input", required=True, help="landing directory the agencies deliver into")
    sv.add_argument("--warehouse", required=True, help="DuckDB file (created if missing)")
    sv.add_argument("--out", required=True, help="directory for each night's warnings.csv, lists/ and summary.md")
    sv.add_argument("--xlsx", action="store_true", help="also one .xlsx per county, a sheet per township")
    sv.add_argument("--mask-ids", action="store_true", help="mask ID numbers in the lists (first 6, last 4 kept)")
    sv.add_argument("--port", type=_port, default=0,
                    help="port of the local Prefect server and its UI when PREFECT_API_URL is not set "
                         "(default: a free one, printed at start)")
    _engine_arguments(sv)
    sv.set_defaults(func=cmd_serve)

    f = command("feedback", "record the verifiers' conclusions from returned lists (.csv or .xlsx)")
    f.add_argument("--warehouse", required=True, help="the DuckDB file the lists came from")
    f.add_argument("--by", default=None, help="who returned the lists (default: the user running the command)")
    f.add_argument("files", nargs="+", help="returned township lists (.csv in UTF-8 or GB18030/GBK, or .xlsx)")
    f.set_defaults(func=cmd_feedback)

    d = command("demo", "make a sample city under ./demo/ and run one batch on it")
    d.add_argument("--dir", default="demo", help="folder for the city, warehouse and lists (default ./demo)")
    d.add_argument("--persons", type=_persons, default=20_000, help="persons in the sample city (default 20000)")
    d.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    d.set_defaults(func=cmd_demo)

    ru = command("rules", "list the rule catalog (rules/*.yaml; documented in rules/CATALOG.md)")
    ru.set_defaults(func=cmd_rules)

    au = command("audit", "outcome audit: warning rates and confirmed shares by county, township, program, sex "
                          "and age band, with flagged groups")
    au.add_argument("--warehouse", required=True, help="DuckDB file (read only)")
    au.add_argument("--out", required=True, help="directory for the CSV per view, the charts and audit.md")
    au.add_argument("--answer-key", default=None,
                    help="a generated city's answer key: compare each group with the planted anomalies")
    au.set_defaults(func=cmd_audit)

    ex = command("explain", "everything held on why one warning exists, in Chinese and English")
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


# our own loggers, sent to Prefect's API (the UI's run logs) besides Prefect's; they never log an ID number
OWN_LOGGERS = "sentinel,data_contracts,rules,models,flows"


def _environment(a: argparse.Namespace) -> None:
    """Prefect's settings for this process, before Prefect is imported."""
    from flows.prefect_api import TERMINAL_LOGGING  # standard library only: Prefect is not loaded

    env = os.environ
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if "PREFECT_HOME" not in env:
        # Prefect's state beside the warehouse (or the demo), never in the home directory
        where = Path(a.dir) if a.command == "demo" else Path(getattr(a, "warehouse", "") or ".").absolute().parent
        env["PREFECT_HOME"] = str(where.absolute() / ".prefect")
    env.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", OWN_LOGGERS)
    env.setdefault("PREFECT_LOGGING_LEVEL", "INFO")  # what reaches the UI
    # our loggers also log outside a flow run (the gate's checks): not a case for Prefect's warning
    env.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # At the terminal a batch prints one line (its result, or what it refused and why); its logs
    # still reach the Prefect UI. -v shows them here too. `serve` keeps Prefect's console logging.
    quiet = not a.verbose and a.command in ("run", "demo", "feedback")
    for key in TERMINAL_LOGGING:
        env[key] = "CRITICAL" if quiet else ("WARNING" if key.endswith("ROOT_LEVEL") else "NOTSET")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    _environment(a)
    begin_batch()  # nothing interrupted or committed yet in this command
    if argv is None:  # the command itself, not a caller in Python (a test): see flows/batch.py
        command_line_process(quiet=not a.verbose)
    level = logging.INFO if a.verbose else logging.CRITICAL
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for h in logging.getLogger().handlers:  # records propagated from Prefect's loggers pass the root's level
        h.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # every request to Prefect's API is not progress
    code = _command(a)
    if argv is None:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """The command's process ends here without Python's teardown of every module it imported: 1.0 s
    after a batch (Prefect, pydantic, scikit-learn: a large heap), where everything had been written
    and closed already. What a normal exit does before that teardown is done first, in its order:
    the threads' exit hooks and the wait for the threads that are not daemons (Prefect's log and
    event workers send what is left), the atexit handlers (logging's flush, Prefect's temporary
    server stopped), the standard streams flushed."""
    try:
        # the command's outcome is decided: a Ctrl-C or SIGTERM now must not turn it into a traceback
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        threading._shutdown()  # what the interpreter's exit calls first (Python 3.11-3.13)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(code)


def _command(a: argparse.Namespace) -> int:
    """The subcommand, its failures turned into an exit status and one line for the operator."""
    try:
        return a.func(a)
    except KeyboardInterrupt as e:  # Ctrl-C outside a batch's own handling (e.g. while Prefect starts)
        if committed():
            print("sentinel: the batch was committed; the Ctrl-C came after its commit point", file=sys.stderr)
            _release(e)
            return 0
        print("sentinel: interrupted; nothing was committed", file=sys.stderr)
        return 130
    except Interrupted as e:  # Ctrl-C or SIGTERM before the commit point
        print(f"sentinel: {e}", file=interrupt_handled())
        _release(e)
        return e.exit_code
    except Exception as e:
        code, line = _explain(e, a)
        terminal = interrupt_handled()
        if code == 1 and a.verbose:
            log.error("failed: %s", mask_ids_in_text(traceback.format_exc()))
        print(f"sentinel: {mask_ids_in_text(line)}", file=terminal)
        _release(e)
        return code


def _explain(e: Exception, a: argparse.Namespace) -> tuple[int, str]:
    """Exit status and the one line the operator reads (ID numbers are masked by the caller)."""
    if committed():  # e.g. Prefect's own SIGTERM handling while it reported the finished run
        return 0, (f"the batch was committed; what followed failed ({type(e).__name__}) and changed nothing "
                   "(the warehouse and the lists are the batch's)")
    if interrupted_by():  # the signal surfaced as another error (DuckDB's 'Query interrupted')
        return 128 + interrupted_by(), str(Interrupted(interrupted_by()))
    if isinstance(e, RefusedInput):
        return 2, str(e)
    if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e):
        where = getattr(e, "filename", None) or getattr(a, "warehouse", None) or "the disk"
        return 2, (f"{where}: no space left on the device; free space and run again (the warehouse and the "
                   "lists were left as they were)")
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):  # bad arguments, said in one line
        return 2, str(e)
    return 1, f"{type(e).__name__}: {e}"  # anything else (the traceback with -v)


if __name__ == "__main__":
    sys.exit(main())
