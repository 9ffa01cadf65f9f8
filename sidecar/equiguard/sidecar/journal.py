"""The prediction journal: each answered prediction, kept until the store has it.

The store commits predictions in batches, a fraction of a second after they
were answered; a sidecar killed in between would lose them. So each
prediction is first appended to a journal segment, one line per prediction,
with a single write(2) before its answer leaves. The operating system keeps
what was written when the process is killed, so a restarted sidecar replays
the segments into the store (inserts of known request ids are ignored) and
nothing answered is lost. Like the store's SQLite file in WAL mode with
synchronous=NORMAL, the journal is not fsynced: it survives the process,
not the loss of the node (whose emptyDir goes with it anyway).

Segments rotate with the writer's batches: a segment is deleted only once
every prediction in it is committed. File names carry the replica id, so
replicas never read each other's segments even on a shared volume.
"""

from __future__ import annotations

import json
import logging
import os
from json.encoder import encode_basestring_ascii as _quote
from pathlib import Path

from equiguard.contracts.rows import decode_groups, encode_groups
from equiguard.sidecar.records import Prediction

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


class PredictionJournal:
    def __init__(self, directory: str, replica_id: str) -> None:
        self._directory = Path(directory)
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prefix = f"{replica_id}-"
        self._current: Path | None = None
        self._fd = -1
        self._next = max(self._sequences(), default=0) + 1

    def recover(self) -> tuple[list[Prediction], list[Path]]:
        """The predictions in the segments an earlier run of this replica left, and those
        segments (to release once the store has the predictions)."""
        segments = [self._segment(sequence) for sequence in sorted(self._sequences())]
        predictions = [prediction for segment in segments for prediction in _read(segment)]
        return predictions, segments

    def append(self, prediction: Prediction, encoded_groups: str | None = None) -> None:
        """One line, written at once; `encoded_groups` spares encoding the groups again."""
        if self._fd < 0:
            self._open_next()
        os.write(self._fd, journal_line(prediction, encoded_groups))

    def rotate(self) -> Path | None:
        """Close the current segment (None if nothing was appended since the last rotation);
        later appends start a new one."""
        segment = self._current
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._current = -1, None
        return segment

    def release(self, segments: list[Path]) -> None:
        """The store has committed everything in these segments."""
        for segment in segments:
            segment.unlink(missing_ok=True)

    def close(self) -> None:
        self.rotate()

    def _sequences(self) -> list[int]:
        """Sequence numbers of this replica's segments on disk (not another replica's whose
        id starts with this one's)."""
        found = []
        for path in self._directory.glob(f"{self._prefix}*{SUFFIX}"):
            sequence = path.name[len(self._prefix) : -len(SUFFIX)]
            if sequence.isdigit():
                found.append(int(sequence))
        return found

    def _segment(self, sequence: int) -> Path:
        return self._directory / f"{self._prefix}{sequence:012d}{SUFFIX}"

    def _open_next(self) -> None:
        self._current = self._segment(self._next)
        self._next += 1
        self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def journal_line(prediction: Prediction, encoded_groups: str | None = None) -> bytes:
    """A prediction as one JSON array and a newline: what json.dumps writes with compact
    separators, put together by hand (it is written before every answer). Time and score
    are finite floats, whose repr is their JSON."""
    groups = encode_groups(prediction.groups) if encoded_groups is None else encoded_groups
    return (
        f"[{_quote(prediction.request_id)},{float(prediction.time)!r},"
        f"{_quote(prediction.revision)},{_quote(groups)},{float(prediction.score)!r},"
        f"{'true' if prediction.decision else 'false'}]\n"
    ).encode()


def _read(path: Path) -> list[Prediction]:
    predictions: list[Prediction] = []
    with path.open("rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                request_id, time, revision, groups, score, decision = json.loads(line)
                predictions.append(
                    Prediction(
                        str(request_id),
                        float(time),
                        str(revision),
                        decode_groups(groups),
                        float(score),
                        bool(decision),
                    )
                )
            except (ValueError, TypeError):
                # Only a write cut short by the loss of the machine leaves a
                # partial line, and only as a segment's last one.
                log.warning("skipped unreadable line %d of journal segment %s", number, path.name)
    return predictions
