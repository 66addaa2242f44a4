"""The batch calendar: the 12 monthly periods before the batch date."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

DEFAULT_AS_OF = dt.date(2026, 11, 1)


@dataclass(frozen=True)
class Calendar:
    as_of: dt.date

    @property
    def first(self) -> dt.date:
        y, m = self.as_of.year, self.as_of.month
        return dt.date(y - 1, m, 1)

    def month(self, idx: int) -> dt.date:
        """First day of period idx (0..11)."""
        m0 = self.first.year * 12 + self.first.month - 1 + idx
        return dt.date(m0 // 12, m0 % 12 + 1, 1)

    def month_end(self, idx: int) -> dt.date:
        return self.month(idx + 1) - dt.timedelta(days=1)

    def label(self, idx: int) -> str:
        return self.month(idx).strftime("%Y-%m")

    def frame(self) -> pl.DataFrame:
        """One row per period: idx, period 'YYYY-MM', month_start, month_end. (Pay dates depend on the
        paying county and township: programs.with_pay_date.)"""
        return pl.DataFrame({
            "idx": list(range(12)),
            "period": [self.label(i) for i in range(12)],
            "month_start": [self.month(i) for i in range(12)],
            "month_end": [self.month_end(i) for i in range(12)],
        })

    def idx_of(self, d: pl.Expr) -> pl.Expr:
        """Period index of a date expression (may fall outside 0..11)."""
        return ((d.dt.year() - self.first.year) * 12 + d.dt.month() - self.first.month).cast(pl.Int32)
