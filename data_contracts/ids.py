"""Chinese resident identity numbers (GB 11643-1999) as vectorised polars expressions.

- :func:`normalise_id`: trim, full-width to ASCII, ``x`` to ``X``, legacy 15-digit numbers
  upgraded to 18 (``19`` inserted before YYMMDD, MOD 11-2 check character appended).
- :func:`id_valid`: length 18, 17 digits then a digit or ``X``, birth date a real date not
  after ``as_of``, check character right.
- :func:`mask_id`: for log lines and messages; keeps the first 6 and last 4 characters.
- :func:`mask_ids`: the project's one masker for outputs (lists, warnings.csv, evidence): every
  ID-like value in a text column, including malformed and spreadsheet-mangled ones.
- :func:`mask_ids_in_text`: the same for a Python string (messages, log lines), more eagerly.

No Python loop over rows: every step is a polars expression.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

# Full-width forms U+FF01..U+FF5E map to ASCII 0x21..0x7E; U+3000 (ideographic space) to space.
FULLWIDTH = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
ASCII = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]


def fold_fullwidth(expr: pl.Expr) -> pl.Expr:
    """Full-width digits, letters and punctuation (``１``, ``Ｘ``, ``－``, ``／``, ``：``) to ASCII."""
    return expr.str.replace_many(FULLWIDTH, ASCII)


def _check_value(first17: pl.Expr, guard: bool = True) -> pl.Expr:
    """MOD 11-2 check value 0..10 of a 17-digit string expression (null if not 17 digits).

    sum(d_i * w_i) with w_i = 2**(17-i) mod 11 (the weights in WEIGHTS) equals the 17 digits
    read as a base-2 number, and 13 = 2 (mod 11), so the sum mod 11 is the digits read in base
    13 (it fits an Int64): one vectorised parse instead of 17 slices. The check value is
    (1 - 2 * sum) mod 11, which is CHECK_CHARS[sum mod 11] with 10 written ``X``.
    """
    if guard:  # base 13 would also read the letters A-C
        first17 = pl.when(first17.str.contains(r"^\d{17}$")).then(first17)
    base13 = first17.str.to_integer(base=13, strict=False)
    return (1 - 2 * (base13 % 11)) % 11


def check_char(first17: pl.Expr) -> pl.Expr:
    """MOD 11-2 check character of a 17-digit string expression (null if not 17 digits)."""
    value = _check_value(first17)
    return pl.when(value == 10).then(pl.lit("X")).otherwise(value.cast(pl.String))


def clean_id(expr: pl.Expr) -> pl.Expr:
    """Trimmed, full-width folded, ``x`` as ``X``; empty as null (no legacy upgrade)."""
    return fold_fullwidth(expr).str.strip_chars().str.replace_all("x", "X", literal=True).replace("", None)


def upgrade_legacy(expr: pl.Expr) -> pl.Expr:
    """A cleaned number with 15 digits becomes 18: ``19`` inserted before YYMMDD and the MOD 11-2
    check character appended; anything else is returned unchanged."""
    first17 = expr.str.replace(r"^(\d{6})(\d{9})$", "${1}19${2}")
    return pl.when(expr.str.contains(r"^\d{15}$")).then(first17 + check_char(first17)).otherwise(expr)


def normalise_id(expr: pl.Expr) -> pl.Expr:
    """Normalised identity number (:func:`clean_id` then :func:`upgrade_legacy`); empty as null."""
    return upgrade_legacy(clean_id(expr))


def id_valid(expr: pl.Expr, as_of: dt.date) -> pl.Expr:
    """True when a normalised number is a valid 18-character identity number; False otherwise
    (including null)."""
    shape = expr.str.contains(r"^\d{17}[\dX]$")
    birth = expr.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    given = expr.str.slice(17, 1).replace("X", "10").cast(pl.Int64, strict=False)
    check_ok = _check_value(expr.str.slice(0, 17), guard=False) == given  # shape guards it
    return (shape & (birth <= pl.lit(as_of)) & check_ok).fill_null(False)


def mask_id(value: object) -> str:
    """``110105********123X``: first 6 and last 4 characters kept, the rest starred."""
    if value is None:
        return "<none>"
    s = str(value).strip()
    if len(s) <= 10:
        return "*" * len(s)
    return s[:6] + "*" * (len(s) - 10) + s[-4:]


# ID-like values, as `--mask-ids` must catch them (issue 12): 15 to 18 characters of digits and X
# (upper or lower case) starting with 6 digits, standing alone: not part of a longer run of letters
# and digits (a 19-digit bank card, a warning number W0123... are not ID numbers). That covers
# valid numbers, legacy 15-digit ones, a 17-digit number whose check character was lost (it can
# be recomputed) and any malformed one. And a number of that size as a spreadsheet writes it back:
# 3.40503199109022E+17 or, as LibreOffice writes it, 3.40503199109022E+017 (E+14..E+17), whose
# mantissa still holds up to 15 of the digits.
_EDGE_L, _EDGE_R = r"(^|[^0-9A-Za-z])", r"($|[^0-9A-Za-z])"
ID_LIKE = _EDGE_L + r"(\d{6})[\dXx]{5,8}([\dXx]{4})" + _EDGE_R
ID_SCIENTIFIC = _EDGE_L + r"(\d[.,]\d{5})\d+([Ee]\+?0?1[4-7])" + _EDGE_R
MASK = "********"


def mask_ids(expr: pl.Expr) -> pl.Expr:
    """Every ID-like value in a text expression masked: first 6 and last 4 characters kept
    (``110105********002X``); in scientific notation the first 6 digits and the exponent
    (``3.40503********E+17``). Each pattern is applied twice, because a match takes the character
    after a number, which may be the one before the next number."""
    out = expr
    for _ in range(2):
        out = out.str.replace_all(ID_SCIENTIFIC, "${1}${2}" + MASK + "${3}${4}")
    for _ in range(2):
        out = out.str.replace_all(ID_LIKE, "${1}${2}" + MASK + "${3}${4}")
    return out


_LONG_DIGITS = None
_SCIENTIFIC = None


def mask_ids_in_text(text: str) -> str:
    """Every run of 14 or more digits (an ID number, 15 or 18 characters, or anything as long) in a
    message: first 6 and last 4 kept; and scientific-notation spellings of such numbers as
    :func:`mask_ids` masks them. For error messages and log lines, where erring on the safe side
    costs nothing."""
    global _LONG_DIGITS, _SCIENTIFIC
    if _LONG_DIGITS is None:
        import re

        _LONG_DIGITS = re.compile(r"\d{14,}[\dXx]?")
        _SCIENTIFIC = re.compile(ID_SCIENTIFIC)
    for _ in range(2):
        text = _SCIENTIFIC.sub(lambda m: m.group(1) + m.group(2) + MASK + m.group(3) + m.group(4), text)
    return _LONG_DIGITS.sub(lambda m: m.group(0)[:6] + "*" * (len(m.group(0)) - 10) + m.group(0)[-4:], text)
