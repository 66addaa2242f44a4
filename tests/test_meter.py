"""flows/meter.py: a stage's seconds and the process's peak memory while it ran."""
from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from flows import meter

pytestmark = pytest.mark.skipif(meter.resident() is None, reason="no /proc: the peak is not measured")


def test_a_stage_that_held_memory_for_a_moment_shows_it_and_the_next_does_not():
    stages: dict = {}
    with meter.stage("holds", stages):
        block = np.ones(300 * 2**20 // 8)  # 300 MB, touched
        time.sleep(0.5)  # the sampling thread reads every 20 ms: many readings, even on a busy machine
        del block
    with meter.stage("holds nothing", stages):
        time.sleep(0.1)
    assert stages["holds"]["peak_mb"] - stages["holds nothing"]["peak_mb"] >= 250, stages
    assert stages["holds"]["seconds"] >= 0.1


def test_a_failing_stage_is_measured_too_and_the_process_peak_is_left_alone():
    block = np.ones(300 * 2**20 // 8)  # a peak 300 MB above what the process holds afterwards
    del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stages: dict = {}
    with pytest.raises(RuntimeError), meter.stage("fails", stages):
        raise RuntimeError("a stage error")
    assert set(stages["fails"]) == {"seconds", "peak_mb"} and stages["fails"]["peak_mb"] > 0
    # the process's own high-water mark (what /usr/bin/time -v reports) is not reset by measuring
    # (resetting the kernel's per stage would bring it down to what the process holds now)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >= before
