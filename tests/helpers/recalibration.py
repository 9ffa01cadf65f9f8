"""Scenarios for the recalibration tests: a manifest with an envelope, and outcomes.

`example_manifest` is the readmission example with `spec.changeControl` and the
race TPR-gap SLO set to Recalibrate. `cohort_outcomes` turns a generated
cohort into the joined outcomes the store would hold (groups as the sidecar
records them, prediction times spread over the window); `write_store` writes
them with the sidecar's own SQLite store code.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from equiguard.cohort import (
    DEFAULT_RACE_MIX,
    DEMOGRAPHICS,
    Cohort,
    Plant,
    ScoreShift,
    generate_cohort,
)
from equiguard.engine.spec import parse_model
from equiguard.recalibration.outcomes import Outcomes
from equiguard.sidecar.records import Outcome, Prediction
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_sqlite import SqliteStore

from helpers.bento import REPO, bentoml_env

NOW = 1_800_000_000.0  # the end of every scenario's window
DAY = 86400.0
SHRUNK = (ScoreShift("race", "Black", -1.5),)
# As many patients of each race group: a Met verdict must be demonstrated for
# every group, and the smallest group sets how many outcomes that takes.
EVEN_RACE_MIX = {"White": 0.2, "Black": 0.2, "Asian": 0.2, "Hispanic": 0.2, "Other": 0.2}


def example_manifest(change_control: Mapping[str, Any] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(
        (REPO / "examples" / "readmission" / "clinicalmodel.yaml").read_text()
    )
    manifest["metadata"]["namespace"] = "clinical"
    manifest["spec"]["changeControl"] = copy.deepcopy(
        dict(change_control or {"methods": ["platt", "isotonic", "groupThreshold"]})
    )
    manifest["spec"]["slos"][0]["action"] = "Recalibrate"
    return manifest


def recorded_groups(cohort: Cohort, manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each declared attribute's group per row, as the sidecar stores it."""
    spec = parse_model(manifest)
    groups: dict[str, np.ndarray] = {name: cohort[name].astype(object) for name in DEMOGRAPHICS}
    for attribute in spec.subgroups.attributes:
        if attribute.is_numeric:
            band = np.searchsorted(np.array(attribute.edges), cohort["age"], side="right") - 1
            labels = np.array([*attribute.labels, "unknown"], dtype=object)
            groups[attribute.name] = labels[np.where(band < 0, len(attribute.labels), band)]
    return groups


def cohort_outcomes(
    manifest: Mapping[str, Any],
    n: int,
    seed: int,
    *,
    plants: Sequence[Plant] = SHRUNK,
    scores: np.ndarray | None = None,
    days: float = 7.0,
    race_mix: Mapping[str, float] = DEFAULT_RACE_MIX,
) -> tuple[Cohort, Outcomes]:
    """A cohort and its joined outcomes over the `days` before NOW, in time order.

    Scores are the cohort's `reference_score` (true risk after the plants) unless given.
    """
    cohort = generate_cohort(n, seed, plants=plants, race_mix=race_mix)
    times = np.sort(NOW - days * DAY * np.random.default_rng(seed + 1).random(n))
    return cohort, Outcomes(
        times,
        np.asarray(cohort["reference_score"] if scores is None else scores, dtype=np.float64),
        cohort["label"].astype(np.int64),
        recorded_groups(cohort, manifest),
    )


def write_store(
    path: Path, outcomes: Outcomes, revision: str, *, unlabelled: int = 0, prefix: str = "req-"
) -> None:
    """The outcomes written as the sidecar writes them: predictions, then joined outcomes.

    The last `unlabelled` predictions get no outcome.
    """
    store = SqliteStore(str(path), "replica-a")
    try:
        predictions = [
            Prediction(
                f"{prefix}{i:08d}",
                float(outcomes.times[i]),
                revision,
                {name: str(column[i]) for name, column in outcomes.groups.items()},
                float(outcomes.scores[i]),
                bool(outcomes.scores[i] >= 0.3),
            )
            for i in range(len(outcomes))
        ]
        store.write(WriteBatch(predictions=predictions), NOW)
        labelled = len(outcomes) - unlabelled
        joined = [
            Outcome(f"{prefix}{i:08d}", bool(outcomes.labels[i]), {}) for i in range(labelled)
        ]
        store.write(WriteBatch(outcomes=joined), NOW)
    finally:
        store.close()


_SCORE_SCRIPT = """
import json
import sys
import numpy as np
import bentoml
from equiguard.cohort import generate_cohort
tag, n, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
race_mix = json.loads(sys.argv[5])
stored = bentoml.models.get(tag)
model = bentoml.sklearn.load_model(stored)
cohort = generate_cohort(n, seed, race_mix=race_mix)
np.save(out, model.predict_proba(cohort.feature_matrix(stored.info.metadata["inputs"]))[:, 1])
"""


def model_scores(
    bento_home: Path,
    model_tag: str,
    n: int,
    seed: int,
    scratch: Path,
    race_mix: Mapping[str, float] = DEFAULT_RACE_MIX,
) -> np.ndarray:
    """What the stored model `model_tag` scores for `generate_cohort(n, seed, race_mix=...)`,
    computed offline in a process of its own (BentoML reads its home once per process)."""
    out = scratch / f"scores-{model_tag.replace(':', '-')}-{n}-{seed}.npy"
    mix = json.dumps(dict(race_mix))
    subprocess.run(
        [sys.executable, "-c", _SCORE_SCRIPT, model_tag, str(n), str(seed), str(out), mix],
        env=bentoml_env(bento_home),
        check=True,
        capture_output=True,
        timeout=120,
    )
    scores: np.ndarray = np.load(out)
    return scores
