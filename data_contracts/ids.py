"""Chinese resident identity numbers (GB 11643-1999) as vectorised polars expressions.

- :func:`normalise_id`: trim, full-width to ASCII, ``x`` to ``X``, legacy 15-digit numbers
  upgraded to 18 (``19`` inserted before YYMMDD, MOD 11-2 check character appended).
- :func:`id_valid`: length 18, 17 digits then a digit or ``X``, birth date a real date not
  after ``as_of``, check character right.
- :data:`ID_LIKE`, :data:`ID_SCIENTIFIC`: the one definition of an ID-like value in text, used by
  both maskers: :func:`mask_ids` (a polars expression: outputs, lists, warnings.csv, evidence) and
  :func:`mask_ids_in_text` (a Python string: messages, log lines, explain), which also masks any
  other long run of digits (:data:`LONG_DIGITS`). :func:`mask_id` masks one value (first 6 and
  last 4 characters kept).

No Python loop over rows: every step is a polars expression.
"""
from __future__ import annotations

import datetime as dt
import re
from functools import cache

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


# The one definition of what an ID number looks like in text, used by the expression form
# (:func:`mask_ids`, outputs) and the text form (:func:`mask_ids_in_text`, messages and log lines).
# ID-like values, as `--mask-ids` must catch them (issue 12): 15 to 18 characters of digits and X
# (upper or lower case) starting with 6 digits, standing alone: not part of a longer run of letters
# and digits (a 19-digit bank card, a warning number W0123... are not ID numbers). That covers
# valid numbers, legacy 15-digit ones, a 17-digit number whose check character was lost (it can
# be recomputed) and any malformed one. And a number of that size as a spreadsheet writes it back:
# 3.40503199109022E+17 or, as LibreOffice writes it, 3.40503199109022E+017 (E+14..E+17), whose
# mantissa still holds up to 15 of the digits. Both patterns are written for polars' regex engine
# (no look-around: the edges are groups 1 and 4) and read the same by Python's ``re``.
_EDGE_L, _EDGE_R = r"(^|[^0-9A-Za-z])", r"($|[^0-9A-Za-z])"
ID_LIKE = _EDGE_L + r"(\d{6})[\dXx]{5,8}([\dXx]{4})" + _EDGE_R
ID_SCIENTIFIC = _EDGE_L + r"(\d[.,]\d{5})\d+([Ee]\+?0?1[4-7])" + _EDGE_R
# the text form's extra, where erring on the safe side costs nothing: any run of 14 or more digits
# (an ID number glued to other characters, a bank card), masked as an ID number is
LONG_DIGITS = r"\d{14,}[\dXx]?"
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


@cache
def _compiled() -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    return re.compile(ID_SCIENTIFIC), re.compile(ID_LIKE), re.compile(LONG_DIGITS)


def mask_ids_in_text(text: str, keep: str | None = None, long_digits: bool = True) -> str:
    """A Python string (a message, a log line, explain's text) with the ID-like values of
    :data:`ID_LIKE` masked by :func:`mask_id` (first 6 and last 4 kept), their scientific-notation
    spellings as :func:`mask_ids` masks them, and (``long_digits``, the default) every other run
    of 14 or more digits. ``keep``: one number left whole (the person a text is about)."""
    scientific, id_like, long_run = _compiled()

    def number(m: re.Match) -> str:
        whole = m.group(0)[len(m.group(1)):len(m.group(0)) - len(m.group(4))]
        return m.group(1) + (whole if whole == keep else mask_id(whole)) + m.group(4)

    for _ in range(2):
        text = scientific.sub(lambda m: m.group(1) + m.group(2) + MASK + m.group(3) + m.group(4), text)
    for _ in range(2):
        text = id_like.sub(number, text)
    if long_digits:
        text = long_run.sub(lambda m: m.group(0) if m.group(0) == keep or _warning_number(m) else mask_id(m.group(0)),
                            text)
    return text


def _warning_number(m: re.Match) -> bool:
    """Whether a run of digits is the 16 hex digits of a warning number (``W`` and 16 hex digits,
    standing alone), which happen to be all decimal once in about two thousand: a verifier must
    find the warning a message names."""
    s, start, end = m.string, m.start(), m.end()
    return (end - start == 16 and start >= 1 and s[start - 1] == "W" and (start == 1 or not s[start - 2].isalnum())
            and (end == len(s) or not s[end].isalnum()))
