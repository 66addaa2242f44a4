"""pandera's polars API (``pa``), imported without pyspark.pandas.

Where pyspark is installed (the [spark] extra), importing pandera imports ``pyspark.pandas`` too
(pandera/external_config.py), only so that pyspark can patch pandas' Series for pandera's *pandas*
API's type hints: 0.1 s of every process that loads the ingest, and pyspark's warning about
pandas 3. This project validates polars frames only. While pandera is imported, ``pyspark.pandas``
reads as not installed (Python's own ``sys.modules[name] = None``, which pandera's ImportError
handler expects); afterwards it is importable again as usual. A process that imported pandera or
pyspark.pandas before keeps what it has.
"""
from __future__ import annotations

import sys


def _polars_api():
    block = "pandera" not in sys.modules and "pyspark.pandas" not in sys.modules
    if block:
        sys.modules["pyspark.pandas"] = None
    try:
        import pandera.polars

        return pandera.polars
    finally:
        if block and "pyspark.pandas" in sys.modules and sys.modules["pyspark.pandas"] is None:
            del sys.modules["pyspark.pandas"]


pa = _polars_api()
