"""The joined outcomes of a window, read back from a store the sidecar's code wrote,
and the split in time between fitting and judging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from equiguard.contracts.rows import decode_groups
from equiguard.recalibration.outcomes import SqliteOutcomes, StoreError, split_by_time
from equiguard.sidecar.store_sqlite import SqliteStore
from helpers.recalibration import DAY, NOW, cohort_outcomes, example_manifest, write_store

MANIFEST = example_manifest()
ATTRIBUTES = [a["name"] for a in MANIFEST["spec"]["subgroups"]["attributes"]]


def test_reads_the_labelled_predictions_of_one_revision_in_the_window(tmp_path: Path) -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 600, seed=1)
    path = tmp_path / "predictions.db"
    write_store(path, outcomes, "readmission:v1", unlabelled=100)
    write_store(path, outcomes.take(np.arange(50)), "readmission:v2", prefix="other-")
    since = NOW - 5 * DAY
    read = SqliteOutcomes(str(path)).joined("readmission:v1", since, NOW, ATTRIBUTES)
    expected = np.flatnonzero(outcomes.times[:500] >= since)
    assert len(read) == len(expected) > 0
    np.testing.assert_array_equal(read.times, outcomes.times[expected])
    np.testing.assert_array_equal(read.scores, outcomes.scores[expected])
    np.testing.assert_array_equal(read.labels, outcomes.labels[expected])
    for name in ATTRIBUTES:
        assert read.groups[name].tolist() == outcomes.groups[name][expected].tolist()
    assert len(SqliteOutcomes(str(path)).joined("readmission:v9", 0, NOW, ATTRIBUTES)) == 0


def test_the_job_reads_the_same_rows_the_sidecar_pages_out_of_its_file(tmp_path: Path) -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 300, seed=4)
    path = tmp_path / "predictions.db"
    write_store(path, outcomes, "readmission:v1", unlabelled=20)
    since = NOW - 4 * DAY
    store = SqliteStore(str(path), "replica-a")
    try:
        paged, after = [], 0
        while True:
            page, following = store.joined_page("readmission:v1", since, NOW, after, 32)
            paged += page
            if following is None:
                break
            after = following
    finally:
        store.close()
    read = SqliteOutcomes(str(path)).joined("readmission:v1", since, NOW, ["race"])
    assert len(paged) == len(read) > 32
    assert [(t, decode_groups(g)["race"], s, label) for t, g, s, label in paged] == list(
        zip(read.times.tolist(), read.groups["race"].tolist(), read.scores.tolist(),
            read.labels.tolist(), strict=True)
    )  # fmt: skip


def test_rows_stored_out_of_time_order_are_read_in_time_order(tmp_path: Path) -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 200, seed=5)
    newest_first = outcomes.take(np.arange(199, -1, -1))
    write_store(tmp_path / "p.db", newest_first, "readmission:v1")
    read = SqliteOutcomes(str(tmp_path / "p.db")).joined("readmission:v1", 0, NOW, ATTRIBUTES)
    np.testing.assert_array_equal(read.times, outcomes.times)
    np.testing.assert_array_equal(read.labels, outcomes.labels)
    assert read.groups["race"].tolist() == outcomes.groups["race"].tolist()


def test_an_attribute_the_store_never_saw_is_unknown(tmp_path: Path) -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 40, seed=2)
    write_store(tmp_path / "p.db", outcomes, "readmission:v1")
    read = SqliteOutcomes(str(tmp_path / "p.db")).joined("readmission:v1", 0, NOW, ["insurer"])
    assert set(read.groups["insurer"].tolist()) == {"unknown"}


def test_the_holdout_is_the_newest_share_and_never_older_than_a_fitted_row() -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 1000, seed=3)
    shuffled = outcomes.take(np.random.default_rng(0).permutation(1000))
    fit, holdout = split_by_time(shuffled, 0.3)
    assert (len(fit), len(holdout)) == (700, 300)
    assert fit.times.max() < holdout.times.min()
    assert np.all(np.diff(holdout.times) >= 0)


def test_a_missing_store_file_is_a_store_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StoreError, match=r"absent\.db"):
        SqliteOutcomes(str(path)).joined("readmission:v1", 0, NOW, ATTRIBUTES)
    assert not path.exists()
