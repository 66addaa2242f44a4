"""The modules `sentinel serve`'s forkserver imports before it forks each night's process from
itself (flows/prefect_api.py `warm_flow_runs`): the heavy ones that leave it with one thread when
it forks. A process forked from one that has threads gets only the thread that forked: a lock one
of the others held stays held, and a thread pool it counts on is not there (polars, pyarrow,
pandera and scikit-learn keep threads from their import on: each night's process imports them
itself; NumPy's OpenBLAS starts threads but stops them before every fork). tests/test_serve.py
checks that the forkserver has one thread."""
from flows import prefect_api

prefect_api.skip_unused_imports()  # before Prefect loads (flows/prefect_api.py UNUSED)

import duckdb  # noqa: E402,F401
import numpy  # noqa: E402,F401
import prefect.flow_engine  # noqa: E402,F401
import prefect.runner  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import sqlglot  # noqa: E402,F401
import yaml  # noqa: E402,F401
