"""Load held: events through the real classifier handler in one warm process (AWS answered in-process).

`make soak` runs 100,000 events with tracemalloc; this smaller run asserts no growth trend in the
live Python heap (sys.getallocatedblocks) nor in RSS beyond stated bounds, and zero crashes. The
bounds are far below what a per-event leak would produce: one leaked 100-byte object per event is
10,000 blocks per 10,000 events. Nothing here asserts on wall time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeonhole_tools.reliability.load import LoadConfig, run_load

EVENTS = 3_000
CHECKPOINT = 500
MAX_BLOCKS_PER_10K = 5_000  # live heap blocks per 10,000 events (a per-event leak of one object: 10,000)
MAX_RSS_MB_PER_10K = 8.0


@pytest.mark.slow
def test_memory_does_not_grow_in_a_warm_process(model_dir: Path, restore_environ: None) -> None:
    result = run_load(LoadConfig(events=EVENTS, checkpoint_every=CHECKPOINT, tracemalloc=False, model_dir=model_dir))
    assert result.crashes == 0, result.first_error
    assert result.item_failures == 0
    assert len(result.checkpoints) == EVENTS // CHECKPOINT
    # Every batch counted in its window: one item per window it touches (a batch that straddles two
    # windows writes two), and no transactions since the per-batch window items.
    assert result.calls["PutItem"] >= EVENTS // 10
    assert "TransactWriteItems" not in result.calls
    assert result.slope("blocks") < MAX_BLOCKS_PER_10K, result.to_dict()["checkpoints"]
    assert result.slope("rss_mb") < MAX_RSS_MB_PER_10K, result.to_dict()["checkpoints"]


def test_growth_fit_finds_a_leak() -> None:
    from pigeonhole_tools.reliability.load import growth_per_10k

    assert growth_per_10k([(1_000, 10.0), (2_000, 11.0), (3_000, 12.0)]) == pytest.approx(10.0)
    assert growth_per_10k([(1_000, 10.0), (2_000, 10.0)]) == 0.0
    assert growth_per_10k([(1_000, 10.0)]) == 0.0
