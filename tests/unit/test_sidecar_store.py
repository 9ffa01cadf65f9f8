"""The SQLite prediction store: joins, duplicates, expiry and what survives reopening."""

from __future__ import annotations

from pathlib import Path

import pytest
from equiguard.sidecar.records import ItemStatus, Outcome, Prediction
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_sqlite import SqliteStore


def prediction(request_id: str, time: float = 1000.0, **groups: str) -> Prediction:
    return Prediction(
        request_id, time, "v1", groups or {"race": "Black", "sex": "unknown"}, 0.4, True
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(str(tmp_path / "predictions.db"), owner="replica-a")


def test_joins_an_outcome_with_its_prediction_once(store: SqliteStore) -> None:
    store.write(WriteBatch(predictions=[prediction("a"), prediction("b")]), now=2000.0)
    result = store.write(
        WriteBatch(
            outcomes=[Outcome("a", True, {}), Outcome("zzz", False, {}), Outcome("a", False, {})]
        ),
        now=2000.0,
    )
    assert result.outcome_status == [ItemStatus.ACCEPTED, ItemStatus.UNKNOWN, ItemStatus.DUPLICATE]
    assert [(item.prediction.request_id, item.label) for item in result.labelled] == [("a", True)]
    again = store.write(WriteBatch(outcomes=[Outcome("a", True, {})]), now=2001.0)
    assert again.outcome_status == [ItemStatus.DUPLICATE]
    assert again.labelled == []


def test_an_outcome_in_the_same_batch_as_its_prediction_joins(store: SqliteStore) -> None:
    result = store.write(
        WriteBatch(predictions=[prediction("a")], outcomes=[Outcome("a", False, {})]), now=2000.0
    )
    assert result.outcome_status == [ItemStatus.ACCEPTED]


def test_outcome_groups_fill_unknown_ones_and_never_overwrite_known_ones(
    store: SqliteStore,
) -> None:
    store.write(WriteBatch(predictions=[prediction("a")]), now=2000.0)
    result = store.write(
        WriteBatch(outcomes=[Outcome("a", True, {"race": "White", "sex": "female"})]), now=2000.0
    )
    assert dict(result.labelled[0].prediction.groups) == {"race": "Black", "sex": "female"}
    assert dict(next(iter(store.labelled(0.0))).prediction.groups) == {
        "race": "Black",
        "sex": "female",
    }


def test_records_are_accepted_once_and_count_only_when_labelled(store: SqliteStore) -> None:
    result = store.write(
        WriteBatch(
            records=[(prediction("r1"), True), (prediction("r1"), False), (prediction("r2"), None)]
        ),
        now=2000.0,
    )
    assert result.record_status == [ItemStatus.ACCEPTED, ItemStatus.DUPLICATE, ItemStatus.ACCEPTED]
    assert [item.prediction.request_id for item in result.labelled] == ["r1"]
    # A record without a label waits for its outcome like a proxied prediction.
    joined = store.write(WriteBatch(outcomes=[Outcome("r2", False, {})]), now=2000.0)
    assert joined.outcome_status == [ItemStatus.ACCEPTED]


def test_labelled_rows_survive_reopening_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "predictions.db")
    first = SqliteStore(path, owner="replica-a")
    first.write(WriteBatch(predictions=[prediction("a", 100.0), prediction("b", 200.0)]), now=300.0)
    first.write(WriteBatch(outcomes=[Outcome("a", True, {}), Outcome("b", False, {})]), now=300.0)
    first.close()
    reopened = SqliteStore(path, owner="replica-a")
    assert [(i.prediction.request_id, i.label) for i in reopened.labelled(0.0)] == [
        ("a", True),
        ("b", False),
    ]
    assert [i.prediction.request_id for i in reopened.labelled(150.0)] == ["b"]


def test_upkeep_expires_pending_predictions_after_retention(store: SqliteStore) -> None:
    store.write(
        WriteBatch(predictions=[prediction("old", 100.0), prediction("new", 900.0)]), now=1000.0
    )
    upkeep = store.upkeep(now=1000.0, pending_before=500.0, labelled_before=0.0)
    assert upkeep.pending == 1
    late = store.write(
        WriteBatch(outcomes=[Outcome("old", True, {}), Outcome("new", True, {})]), now=1000.0
    )
    assert late.outcome_status == [ItemStatus.UNKNOWN, ItemStatus.ACCEPTED]


def test_a_failed_batch_leaves_nothing_behind(store: SqliteStore) -> None:
    bad = Prediction("bad", 1.0, "v1", {"race": object()}, 0.5, True)  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.write(WriteBatch(predictions=[prediction("a")], records=[(bad, True)]), now=1.0)
    assert store.write(WriteBatch(outcomes=[Outcome("a", True, {})]), now=2.0).outcome_status == [
        ItemStatus.UNKNOWN
    ]
