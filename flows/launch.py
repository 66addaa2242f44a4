"""`sentinel run`'s way into the nightly flow, with nothing of Prefect loaded until the flow runs.

With no Prefect API configured, `sentinel run` starts Prefect's temporary server in the background
(flows/prefect_api.py, 7-8 s). Meanwhile :func:`run_batch` does the work that needs no API -- it
stages the working copy, the model and the outputs, writes the batch's `runs` row and runs the
ingest -- and the flow (flows/nightly.py) takes it over once the server answers: its ingest task
reports what the ingest did (`early_ingest`), its stages continue on the same working copy
(`early_staged`). Nothing of it counts before the flow's commit point; a failure, Ctrl-C or
kill -9 discards it as it would in the flow.

The flow's own code (Prefect, scikit-learn, the rules, the audit: 3-4 s of imports) is loaded by a
thread of its own while the ingest runs (:class:`_Loading`), not before it, and the rule catalog
with it (:func:`_ready_for_the_night`): the ingest's work is in DuckDB and polars, which release
the interpreter. What the ingest imports on its first use (the
GB18030 codec, pandera's polars backend) is imported by this thread before the loading starts, so
that the two never import the same module at once.

Also the stage calls both share: :func:`with_con` (a stage on its own connection to the working
copy, its errors with ID numbers masked) and :func:`ingest_stage`.
"""
from __future__ import annotations

import datetime as dt
import importlib
import logging
import threading
from pathlib import Path

from data_contracts import ingest as ingest_mod
from data_contracts import warehouse
from data_contracts.errors import RefusedInput
from data_contracts.ids import mask_ids_in_text
from data_contracts.load import raw_folder
from data_contracts.warehouse import configure as configure_connection
from flows import meter, prefect_api, runs
from flows.batch import (Interrupted, StagedDir, WorkingCopy, batch_gate, check_engine, interruptible,
                         interrupted_by, today)
from flows.warm import first_uses, imported_on_first_use
from models import default_model_dir

# What run_batch did before the flow run under `sentinel run`: per warehouse the staged working copy,
# model and outputs with the batch's number; per working copy the ingest's outcome (its counts, or the
# exception it raised), which the flow's ingest task reports.
log = logging.getLogger(__name__)
early_staged: dict[Path, tuple] = {}
early_ingest: dict[str, object] = {}


class StageError(RuntimeError):
    """A stage failed; the message is the original's with any ID number masked (it reaches logs,
    Prefect's database and the operator's terminal)."""


def with_con(work: str, fn, *args, **kwargs):
    """``fn(con, *args, **kwargs)`` on a connection of its own to the working copy ``work``."""
    with warehouse.connect(work) as con:  # the working copy the batch holds open (flows/batch.py)
        configure_connection(con)
        try:
            return fn(con, *args, **kwargs)
        except (RefusedInput, OSError):
            raise
        except Exception as e:
            masked = mask_ids_in_text(str(e))
            if masked == str(e):
                raise
            raise StageError(f"{type(e).__name__}: {masked}") from None


def ingest_stage(input_dir: str, work: str, as_of: dt.date, batch_id: int, raw: str,
                 accept_shrunk_snapshot: list[str] | None, min_snapshot_share: float) -> dict:
    """The ingest on the working copy; raw_<extract>'s files go to the warehouse's own raw folder ``raw``.
    Its counts, with the process's peak memory while it ran (``peak_mb``, flows/meter.py)."""
    measured: dict = {}
    with meter.stage("ingest", measured):
        summary = with_con(work, ingest_mod.ingest_into, Path(input_dir), as_of, batch_id, Path(raw),
                           allow_shrink=set(accept_shrunk_snapshot or ()),
                           min_snapshot_share=min_snapshot_share).summary()
    return {**summary, "peak_mb": measured["ingest"]["peak_mb"]}


class _Loading:
    """A module imported by a thread of its own, then ``then(module)`` (what its first use would do
    anyway, cached for the process); :meth:`result` waits for it. Should either fail there,
    :meth:`result` imports the module again in the caller's thread, which raises the error where it
    can be handled (and ``then``'s work is done again where it is needed)."""

    def __init__(self, name: str, then=lambda module: None):
        self.name, self._then = name, then
        self._thread = threading.Thread(target=self._load, name=f"import {name}", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self._then(importlib.import_module(self.name))
        except BaseException as e:  # noqa: BLE001 -- said again by result(), in the batch's own thread
            log.debug("loading %s in the background failed (%s); it is loaded again where it is needed",
                      self.name, type(e).__name__)

    def result(self):
        self._thread.join()
        return importlib.import_module(self.name)


def _ready_for_the_night(nightly) -> None:
    """What the batch does first and keeps for the process (``warm.first_uses``: the rule catalogue,
    scikit-learn, ...), which a first night does; then Prefect's temporary server warmed
    (:func:`_warm_prefect`). ``nightly``: the flow's module, as the loading thread imported it."""
    first_uses()
    _warm_prefect(nightly.nightly.name)


def _warm_prefect(flow_name: str) -> None:
    """While the ingest runs: what a flow run's start imports (Prefect's task engine, its flow
    visualisation: 0.1 s), and, once the temporary server answers, the calls a flow run begins with
    (its flow by name; a read of flow runs and of task runs), so that the server's slow first
    answers (SQL compiled and cached on first use) are not on the run's path: the first flow run of a
    fresh server took 0.71 s, 0.51 s after these. Creating the flow is what the run does first
    anyway. Nothing here may fail the batch: the run itself says what is wrong."""
    import prefect.task_engine  # noqa: F401
    import prefect.utilities.visualization  # noqa: F401

    try:
        prefect_api.wait()
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.create_flow_from_name(flow_name)
            client.read_flow_runs(limit=1)
            client.read_task_runs(limit=1)
    except Exception as e:  # noqa: BLE001 -- the flow run meets the same server and says it
        log.debug("Prefect's server not warmed (%s)", type(e).__name__)


def run_batch(input_dir: Path, warehouse: Path, out_dir: Path, as_of: dt.date | None = None, *, xlsx: bool = False,
              mask_ids: bool = False, retrain: bool = False, replay: bool = False,
              accept_shrunk_snapshot: list[str] | tuple[str, ...] = (), min_snapshot_share: float = 0.9,
              engine: str = "duckdb", spark_master: str | None = None, stage_uri: str | None = None) -> dict:
    """Entry point of `sentinel run` (which passes the gate before importing Prefect, then calls this)."""
    input_dir, warehouse, out_dir = (Path(p).absolute() for p in (input_dir, warehouse, out_dir))
    as_of = as_of or today()
    ingest_mod.Options.of(accept_shrunk_snapshot, min_snapshot_share)  # refused before Prefect starts, too
    check_engine(engine, stage_uri, input_dir, out_dir, spark_master)

    def run(nightly) -> dict:
        return nightly.nightly(str(input_dir), str(warehouse), str(out_dir), as_of, xlsx=xlsx, mask_ids=mask_ids,
                               retrain=retrain, accept_shrunk_snapshot=list(accept_shrunk_snapshot),
                               min_snapshot_share=min_snapshot_share, engine=engine, spark_master=spark_master,
                               stage_uri=stage_uri)

    with batch_gate(input_dir, warehouse, out_dir, as_of, replay):
        if not prefect_api.starting():
            return run(importlib.import_module("flows.nightly"))
        imported_on_first_use()  # (see the module docstring)
        flow_code = _Loading("flows.nightly", then=_ready_for_the_night)
        with interruptible(), WorkingCopy(warehouse) as work, \
                StagedDir(default_model_dir(warehouse), copy=True) as model, StagedDir(out_dir) as outputs:
            w = str(work.path)
            batch_id = with_con(w, runs.start, as_of, str(input_dir))
            early_staged[warehouse] = (work, model, outputs, batch_id)
            try:
                try:
                    early_ingest[w] = ingest_stage(str(input_dir), w, as_of, batch_id, str(raw_folder(warehouse)),
                                                   list(accept_shrunk_snapshot), min_snapshot_share)
                except Exception as e:  # the flow's ingest task raises it (and retries an OSError) ...
                    if interrupted_by() is not None:  # ... unless it is DuckDB's "interrupted" for Ctrl-C/SIGTERM
                        raise Interrupted(interrupted_by()) from None
                    early_ingest[w] = e
                try:
                    prefect_api.wait()
                except RuntimeError:  # no Prefect: a refused input is still said as one (exit 2)
                    if isinstance(early_ingest.get(w), RefusedInput):
                        raise early_ingest[w] from None
                    raise
                nightly = flow_code.result()
                with prefect_api.flow_run_settings():
                    return run(nightly)
            finally:
                early_staged.pop(warehouse, None)
                early_ingest.pop(w, None)
