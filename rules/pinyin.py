"""pypinyin, imported without its phrase dictionary: the one way this project imports it.

The phrase dictionary gives words their reading in context (重庆 chóng, not zhòng). Loading it is
most of pypinyin's import: 0.35-0.4 s and 45 MB in a process that has imported the batch's code
(its dict literal built under the garbage collector's eye), paid by every `sentinel run` and every
night `sentinel serve` starts. The rules ask pypinyin one character at a time
(rules/names.py), where the phrase dictionary is never consulted: tests/test_rules_catalog.py
checks that every character of the CJK blocks reads the same with and without it. Where words
are read (the outcome audit's chart labels, romanised where no CJK font is installed:
oversight/report.py), :func:`load_phrases` loads it into the running pypinyin first (0.2 s, once).

pypinyin reads ``PYPINYIN_NO_PHRASES`` once, when it is imported; it is set for that moment only and
the environment is left as it was (child processes are not affected). A process that imported
pypinyin before this module keeps the dictionary it loaded.
"""
from __future__ import annotations

import functools
import os

_SWITCH = "PYPINYIN_NO_PHRASES"
_before = os.environ.get(_SWITCH)
os.environ[_SWITCH] = "true"
try:
    from pypinyin import Style, lazy_pinyin
finally:
    if _before is None:
        os.environ.pop(_SWITCH, None)
    else:
        os.environ[_SWITCH] = _before

__all__ = ["Style", "lazy_pinyin", "load_phrases"]


@functools.cache
def load_phrases() -> None:
    """pypinyin's phrase dictionary, loaded into the running pypinyin (its own ``load_phrases_dict``), for
    text read as words: 重庆 Chongqing, not Zhongqing. The rules' one-character readings do not change."""
    from pypinyin import load_phrases_dict
    from pypinyin.constants import PHRASES_DICT

    if not PHRASES_DICT:
        from pypinyin.phrases_dict import phrases_dict

        load_phrases_dict(phrases_dict)
