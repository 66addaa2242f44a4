"""What makes a batch safe, independent of Prefect: one batch at a time per warehouse, and a
batch that either commits completely or leaves the warehouse as it was.

- `batch_lock(warehouse)`: an exclusive, non-blocking `flock` on `.<warehouse>.lock`. A second
  batch is refused (RefusedInput: exit 2). The operating system releases the lock when the
  process ends, however it ends, so a killed batch never leaves a stale lock behind.
- `WorkingCopy`: the batch writes to `.<warehouse>.batch`, a copy of the warehouse (or a new
  file); `commit()` checkpoints it and renames it over the warehouse (an atomic rename on one
  file system). Until then the warehouse is untouched: a failed stage, a refused file or
  `kill -9` leave it exactly as it was, and analysts reading it meanwhile see last night's state.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import duckdb

from data_contracts.errors import RefusedInput


@contextlib.contextmanager
def batch_lock(warehouse: Path):
    warehouse = Path(warehouse)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    lock_path = warehouse.with_name(f".{warehouse.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise RefusedInput(warehouse, f"another batch is running against this warehouse ({holder}); "
                                          "try again when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


class WorkingCopy:
    def __init__(self, warehouse: Path):
        self.warehouse = Path(warehouse)
        self.path = self.warehouse.with_name(f".{self.warehouse.name}.batch")

    def __enter__(self) -> WorkingCopy:
        self.discard()  # what a killed batch may have left
        if self.warehouse.exists():
            if self.wal.exists():
                # fold the write-ahead log into the file first, so that the copy is the whole state
                # (only then: opening the warehouse to write would fail while a notebook reads it)
                try:
                    with duckdb.connect(str(self.warehouse)) as con:
                        con.execute("CHECKPOINT").fetchall()
                except duckdb.IOException as e:
                    raise RefusedInput(self.warehouse, f"has unsaved changes and is in use by another process ({e})"
                                       ) from None
            shutil.copyfile(self.warehouse, self.path)
        return self

    @property
    def wal(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".wal")

    def commit(self) -> None:
        with duckdb.connect(str(self.path)) as con:
            con.execute("CHECKPOINT").fetchall()
        if self.wal.exists():  # nobody may write the warehouse under the lock; a log now is not ours
            raise RuntimeError(f"{self.wal} appeared during the batch; the warehouse was left as it was")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.path, self.warehouse)

    def discard(self) -> None:
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if p.exists():
                p.unlink()

    def __exit__(self, *exc) -> None:
        self.discard()


def swap_dir(staging: Path, target: Path) -> None:
    """Put a finished directory in place of `target` with two renames."""
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
