"""What a night's process does before its night, to have it done: `sentinel serve`'s spare
processes (flows/spare.py) call :func:`ready_for_a_night` while they wait for a night, and
`sentinel run`'s loading thread calls :func:`first_uses` during the ingest (flows/launch.py)."""
from __future__ import annotations

import codecs

from flows import prefect_api


def imported_on_first_use() -> None:
    """What the ingest would import on its first use (the GB18030 codec, pandera's polars backend),
    imported before the ingest starts: `sentinel run`'s loading thread and its ingest never import the
    same module at once (flows/launch.py)."""
    from data_contracts.schemas import register_backends

    for name in ("gb18030", "utf-8-sig"):
        codecs.lookup(name)
    register_backends()


def first_uses() -> None:
    """What the batch does first, and keeps for the process: the rule files parsed and their SQL
    checked for Spark (``catalog._parsed``, 0.3-0.6 s), the name similarity's first call (rapidfuzz
    imports pandas, 0.25 s); and what the scorer and the outcome audit import when they first need
    it (scikit-learn and joblib, 0.75 s: models/store.py; scipy.stats and the audit itself, which the
    flow imports in the middle of the night: casework/summary.py)."""
    import joblib  # noqa: F401
    import scipy.stats  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    import models.card  # noqa: F401
    import oversight.audit  # noqa: F401

    from rules.catalog import load_catalog
    from rules.names import similarity

    load_catalog()
    similarity(["张三"], ["张山"])


def ready_for_a_night() -> None:
    """Everything a served night imports (the flow's code, Prefect's engine, the command line a
    spawned process runs again as its main module) and :func:`first_uses`."""
    prefect_api.skip_unused_imports()  # before Prefect loads (flows/prefect_api.py UNUSED)
    import fastapi.encoders  # noqa: F401 -- Prefect's flow run serialises its parameters with it
    import prefect.flow_engine  # noqa: F401
    import prefect.task_engine  # noqa: F401
    import prefect.utilities.visualization  # noqa: F401

    import flows.cli  # noqa: F401
    import flows.nightly  # noqa: F401

    imported_on_first_use()
    first_uses()
    api_version_checked()


def api_version_checked() -> None:
    """Prefect's client asks the API server for its version once per process, when the flow run's
    engine first enters a client (``/admin/version``: 0.16-0.17 s of a served night at 1M, the
    server answering while the night starts). Asked here, the answer is cached for the process
    (keyed by the API's URL and the client's version), so the night does not ask again. Where the
    server cannot be asked now, the night asks, and reports what it finds. Not without an API URL
    (serve always has one): Prefect's client would start a temporary server of its own to ask."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        return
    try:
        with get_client(sync_client=True) as client:
            client.raise_for_api_version_mismatch_once()
    except Exception:  # noqa: BLE001 -- the night's own check reports it
        pass
