"""ID numbers for the synthetic city (GB 11643-1999), built vectorised in polars."""
import polars as pl

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_char(id17: pl.Expr) -> pl.Expr:
    """The MOD 11-2 check character of a 17-digit string expression."""
    total = pl.sum_horizontal(
        [id17.str.slice(i, 1).cast(pl.Int32) * w for i, w in enumerate(WEIGHTS)]
    )
    return (total % 11).replace_strict(list(range(11)), list(CHECK_CHARS), return_dtype=pl.String)


def with_check_char(id17: pl.Expr) -> pl.Expr:
    return pl.concat_str([id17, check_char(id17)])


def to_legacy15(id18: pl.Expr) -> pl.Expr:
    """The 15-digit form of an 18-digit number of someone born in the 1900s: drop '19' and the check."""
    return pl.concat_str([id18.str.slice(0, 6), id18.str.slice(8, 9)])
