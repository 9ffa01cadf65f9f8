"""The prediction journal: what a killed sidecar had answered is replayed, nothing else."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from equiguard.contracts.rows import encode_groups
from equiguard.sidecar.journal import PredictionJournal
from equiguard.sidecar.records import Prediction


def prediction(request_id: str, score: float = 0.7) -> Prediction:
    return Prediction(request_id, 1000.5, "v2", {"race": "Black", "sex": "F"}, score, score >= 0.5)


def test_a_recovered_prediction_equals_the_one_appended(tmp_path: Path) -> None:
    journal = PredictionJournal(str(tmp_path), "replica-a")
    journal.append(prediction("r-1", 0.25))
    journal.append(prediction("r-2", 0.75))
    journal.close()

    recovered, segments = PredictionJournal(str(tmp_path), "replica-a").recover()

    assert recovered == [prediction("r-1", 0.25), prediction("r-2", 0.75)]
    assert len(segments) == 1


def test_a_line_is_the_json_of_the_prediction_whatever_its_request_id_holds(
    tmp_path: Path,
) -> None:
    # Request ids are any visible ASCII: quotes and backslashes must be escaped.
    awkward = Prediction('r"1\\x', 1_765_000_000.123456, "v2", {"race": "Black"}, 0.1, False)
    journal = PredictionJournal(str(tmp_path), "replica-a")
    journal.append(awkward)
    journal.append(prediction("r-2"), encode_groups(prediction("r-2").groups))
    journal.close()

    lines = next(tmp_path.iterdir()).read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        ['r"1\\x', 1_765_000_000.123456, "v2", '{"race":"Black"}', 0.1, False],
        ["r-2", 1000.5, "v2", '{"race":"Black","sex":"F"}', 0.7, True],
    ]
    recovered, _ = PredictionJournal(str(tmp_path), "replica-a").recover()
    assert recovered == [awkward, prediction("r-2")]


def test_released_segments_are_not_recovered_and_the_current_one_is(tmp_path: Path) -> None:
    journal = PredictionJournal(str(tmp_path), "a")
    journal.append(prediction("committed"))
    committed = journal.rotate()
    assert committed is not None
    journal.append(prediction("queued"))
    journal.release([committed])

    recovered, _ = PredictionJournal(str(tmp_path), "a").recover()

    assert [p.request_id for p in recovered] == ["queued"]


def test_rotating_with_nothing_appended_makes_no_segment(tmp_path: Path) -> None:
    journal = PredictionJournal(str(tmp_path), "a")
    assert journal.rotate() is None
    assert list(tmp_path.iterdir()) == []


def test_replicas_sharing_a_folder_recover_only_their_own_segments(tmp_path: Path) -> None:
    for replica in ("replica", "replica-b"):
        journal = PredictionJournal(str(tmp_path), replica)
        journal.append(prediction(f"from-{replica}"))
        journal.close()

    recovered, _ = PredictionJournal(str(tmp_path), "replica").recover()

    assert [p.request_id for p in recovered] == ["from-replica"]


def test_a_partial_last_line_is_skipped_and_the_rest_recovered(tmp_path: Path) -> None:
    journal = PredictionJournal(str(tmp_path), "a")
    journal.append(prediction("whole"))
    journal.close()
    (segment,) = tmp_path.iterdir()
    with segment.open("ab") as file:
        file.write(b'["cut-sh')

    recovered, _ = PredictionJournal(str(tmp_path), "a").recover()

    assert [p.request_id for p in recovered] == ["whole"]


def test_every_prediction_appended_before_a_sigkill_is_recovered(tmp_path: Path) -> None:
    # A real process appends and says how many it has appended; it is killed
    # at once, with no chance to flush or close anything.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from equiguard.sidecar.journal import PredictionJournal\n"
            "from equiguard.sidecar.records import Prediction\n"
            f"journal = PredictionJournal({str(tmp_path)!r}, 'a')\n"
            "i = 0\n"
            "while True:\n"
            "    journal.append(Prediction(f'r-{i}', 1.0, 'v1', {'race': 'White'}, 0.5, True))\n"
            "    i += 1\n"
            "    if i % 1000 == 0:\n"
            "        print(i, flush=True)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    acknowledged = 0
    deadline = time.monotonic() + 30
    while acknowledged < 5000 and time.monotonic() < deadline:
        acknowledged = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()

    recovered, _ = PredictionJournal(str(tmp_path), "a").recover()

    assert acknowledged >= 5000
    assert len(recovered) >= acknowledged
    assert [p.request_id for p in recovered] == [f"r-{i}" for i in range(len(recovered))]
