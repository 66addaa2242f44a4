"""ID numbers for the synthetic city, built with the same vectorised check as the ingest."""
import polars as pl

from data_contracts.ids import check_char


def with_check_char(id17: pl.Expr) -> pl.Expr:
    return pl.concat_str([id17, check_char(id17)])


def to_legacy15(id18: pl.Expr) -> pl.Expr:
    """The 15-digit form of an 18-digit number of someone born in the 1900s: drop '19' and the check."""
    return pl.concat_str([id18.str.slice(0, 6), id18.str.slice(8, 9)])
