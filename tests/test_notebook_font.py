"""The notebooks' charts are labelled in Chinese with the CJK font the project installs (issue 11):
render one chart the notebooks draw, with Chinese labels, and fail on any missing glyph
(matplotlib warns "Glyph ... missing from font(s)": here that warning is an error)."""
from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import polars as pl  # noqa: E402
import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def notebook_module(monkeypatch):
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    sys.modules.pop("sentinel_notebook", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the import warns when the font is missing: fail, saying what to install
        import sentinel_notebook
    yield sentinel_notebook
    sys.modules.pop("sentinel_notebook", None)


def render(ax) -> list[str]:
    """Draw the figure to PNG; the glyph warnings raised while drawing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ax.figure.savefig(io.BytesIO(), format="png")
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def test_a_chart_with_chinese_labels_has_every_glyph(notebook_module):
    import matplotlib.pyplot as plt

    nb = notebook_module
    by = pl.DataFrame({"category": ["deceased_paid", "duplicate_identity", "eligible_not_receiving"],
                       "high": [3, 1, 0], "medium": [2, 0, 4], "low": [0, 5, 1]})
    ax = nb.barh(by, "category", ["high", "medium", "low"], "各类预警及风险等级（2026-11-01）")
    try:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["死亡后仍发放", nb.zh("duplicate_identity"), nb.zh("eligible_not_receiving")]
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in label) for label in labels)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["高", "中", "低"]
        # the font the labels resolve to is the project's CJK font, not a fallback
        used = font_manager.findfont(ax.title.get_fontproperties(), fallback_to_default=False)
        assert font_manager.get_font(used).family_name == nb.CJK_FONT
        assert render(ax) == []
    finally:
        plt.close("all")


def test_the_check_fails_without_the_font(notebook_module):
    """The glyph check is not vacuous: the same labels in matplotlib's default font miss glyphs."""
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}):
        fig, ax = plt.subplots()
        ax.set_title("死亡后仍发放")
        try:
            assert render(ax), "DejaVu Sans has no CJK glyphs: matplotlib should have warned"
        finally:
            plt.close("all")
