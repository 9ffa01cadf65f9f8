"""`equiguard audit` end to end on generated records."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from equiguard.cli import main
from fairlearn.metrics import MetricFrame, true_positive_rate

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "examples" / "readmission" / "clinicalmodel.yaml"
FIELDS = [
    "timestamp",
    "score",
    "label",
    "race",
    "sex",
    "age_band",
    "payer",
    "language",
    "adi_quintile",
]


def write_records(path: Path, n: int = 4000, seed: int = 5) -> list[dict[str, object]]:
    """Records with a planted TPR gap: Black patients' risk is under-scored."""
    rng = np.random.default_rng(seed)
    race = rng.choice(
        ["White", "Black", "Asian", "Hispanic", "Other"], n, p=[0.4, 0.3, 0.1, 0.1, 0.1]
    )
    risk = rng.beta(2, 5, n)
    label = (rng.random(n) < risk).astype(int)
    score = np.where(race == "Black", risk * 0.5, risk)
    rows = [
        {
            "timestamp": f"2026-01-{1 + i % 28:02d}T10:00:00Z",
            "score": round(float(score[i]), 6),
            "label": int(label[i]),
            "race": race[i],
            "sex": rng.choice(["female", "male"]),
            "age_band": int(rng.integers(18, 95)),
            "payer": "Medicare",
            "language": "English",
            "adi_quintile": str(rng.integers(1, 6)),
        }
        for i in range(n)
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_audit_json_reports_metrics_equal_to_fairlearn_and_a_violated_slo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.csv"
    rows = write_records(records)
    code, out, _ = run(
        [str(records), "--model", str(MANIFEST), "--format", "json", "--show-small-cells"], capsys
    )
    assert code == 0
    report = json.loads(out)
    assert report["records"] == {
        "rows": 4000,
        "from": "2026-01-01T10:00:00Z",
        "to": "2026-01-28T10:00:00Z",
    }
    labels = np.array([r["label"] for r in rows])
    decisions = (np.array([r["score"] for r in rows]) >= 0.30).astype(int)
    frame = MetricFrame(
        metrics=true_positive_rate,
        y_true=labels,
        y_pred=decisions,
        sensitive_features=np.array([r["race"] for r in rows]),
    )
    for group, expected in frame.by_group.items():
        assert report["metrics"]["race"][group]["tpr"] == expected
    white = report["metrics"]["race"]["White"]
    assert white["intervals"]["tpr"][0] < white["tpr"] < white["intervals"]["tpr"][1]
    assert set(report["metrics"]) == {
        "overall",
        "race",
        "sex",
        "age_band",
        "payer",
        "language",
        "adi_quintile",
        "race_x_sex",
    }
    verdict = report["slos"]["tpr-gap-race"]
    assert (verdict["verdict"], verdict["reason"]) == ("Violated", "ThresholdExceeded")
    assert verdict["evidence"]["group"] == "Black"
    assert verdict["evidence"]["interval"][0] > 0.10


def test_audit_output_hides_small_cells_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.csv"
    write_records(records, n=400)
    code, out, _ = run([str(records), "--model", str(MANIFEST), "--format", "json"], capsys)
    assert code == 0
    blocks = [b for groups in json.loads(out)["metrics"].values() for b in groups.values()]
    counts = [b[k] for b in blocks for k in ("n", "positives", "tp", "fp", "tn", "fn")]
    assert not [c for c in counts if c is not None and 1 <= c <= 10]
    assert any(b["suppressed"] for b in blocks)


def test_audit_reads_json_lines_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_records(tmp_path / "records.csv", n=600)
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run([str(records), "--model", str(MANIFEST)], capsys)
    assert code == 0
    assert "race_x_sex" in out and "tpr-gap-race:" in out
    assert out.splitlines()[0].startswith("model readmission-risk: 600 records")


def test_the_installed_command_runs_the_audit(tmp_path: Path) -> None:
    records = tmp_path / "records.csv"
    write_records(records, n=300)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "equiguard",
            "audit",
            str(records),
            "--model",
            str(MANIFEST),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records"]["rows"] == 300


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda rows: rows[2].update(score="1.3"),
            "row 3, field \"score\": '1.3' is outside [0, 1]",
        ),
        (
            lambda rows: rows[0].update(score="high"),
            "row 1, field \"score\": 'high' is not a number",
        ),
        (lambda rows: rows[4].update(label="2"), "row 5, field \"label\": '2' is not 0 or 1"),
        (lambda rows: rows[3].update(timestamp="yesterday"), 'row 4, field "timestamp"'),
    ],
)
def test_bad_records_exit_non_zero_naming_the_row_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, message: str
) -> None:
    path = tmp_path / "records.csv"
    rows = write_records(path, n=20)
    edit(rows)  # type: ignore[operator]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    code, out, err = run([str(path), "--model", str(MANIFEST)], capsys)
    assert code == 2 and out == ""
    assert message in err


def test_a_missing_column_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "records.csv"
    path.write_text("score,label,race\n0.5,1,White\n")
    code, _, err = run([str(path), "--model", str(MANIFEST)], capsys)
    assert code == 2 and 'the header has no column "sex"' in err


def test_an_unknown_metric_in_the_manifest_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "model.yaml"
    manifest.write_text(MANIFEST.read_text().replace("metric: tpr", "metric: accuracy", 1))
    records = tmp_path / "records.csv"
    write_records(records, n=20)
    code, _, err = run([str(records), "--model", str(manifest)], capsys)
    assert code == 2 and "spec.slos[0].metric: 'accuracy' is not a metric" in err


def jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def quintile_counts(report: dict[str, object]) -> dict[str, int]:
    groups = report["metrics"]["adi_quintile"]  # type: ignore[index]
    return {group: block["n"] for group, block in groups.items()}


@pytest.mark.parametrize("first", [True, 1])
def test_a_json_boolean_is_unknown_and_never_shares_a_group_with_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: object
) -> None:
    values = [first, True if first == 1 and first is not True else 1] * 10
    rows = [
        {"score": 0.5, "label": i % 2, "race": "White", "sex": "male", "age_band": 50,
         "payer": "Medicare", "language": "English", "adi_quintile": value}
        for i, value in enumerate(values)
    ]  # fmt: skip
    records = jsonl(tmp_path / "records.jsonl", rows)
    code, out, _ = run(
        [str(records), "--model", str(MANIFEST), "--format", "json", "--show-small-cells"], capsys
    )
    assert code == 0
    counts = quintile_counts(json.loads(out))
    assert (counts["1"], counts["unknown"]) == (10, 10)


def csv_text(header: str, *rows: str) -> str:
    return "\n".join([header, *rows]) + "\n"


HEADER = "timestamp,score,label,race,sex,age_band,payer,language,adi_quintile"
ROW = "2026-01-02T10:00:00Z,0.5,1,White,male,50,Medicare,English,1"


def write_bytes(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            lambda d: write_bytes(d / "r.csv", csv_text(HEADER, ROW).encode() + b"\xff\xfe,1\n"),
            "r.csv: not UTF-8 text (byte ",
        ),
        (
            lambda d: write_bytes(
                d / "r.csv", csv_text(HEADER, ROW.replace("White", "W" * 131_073)).encode()
            ),
            "r.csv row 1: not valid CSV (field larger than field limit (131072))",
        ),
        (
            lambda d: write_bytes(d / "r.csv", csv_text(HEADER, ROW.replace("0.5", "9" * 400))),
            'r.csv row 1, field "score": \'999999999999999999999999999999999999999... is outside',
        ),
        (
            lambda d: jsonl(d / "r.jsonl", [{"score": int("9" * 400), "label": 1}]),
            'r.jsonl row 1, field "score": 9999999999999999999999999999999999999999... is outside',
        ),
        *[
            (
                lambda d, when=when: write_bytes(
                    d / "r.csv", csv_text(HEADER, ROW.replace("2026-01-02T10:00:00Z", when))
                ),
                f"r.csv row 1, field \"timestamp\": '{when}' is not a time from year 1 to 9999",
            )
            for when in ("1e20", "inf", "nan", "-1e300")
        ],
        (
            lambda d: write_bytes(
                d / "r.csv",
                csv_text(HEADER, ROW, ROW.replace("2026-01-02T10:00:00Z", "nan")),
            ),
            "r.csv row 2, field \"timestamp\": 'nan' is not a time from year 1 to 9999",
        ),
        (
            lambda d: jsonl(d / "r.jsonl", [{"score": 0.5, "label": 1, "timestamp": 1e20}]),
            'r.jsonl row 1, field "timestamp": 1e+20 is not a time from year 1 to 9999',
        ),
        (
            lambda d: write_bytes(d / "r.jsonl", b"[" * 100_000 + b"\n"),
            "r.jsonl row 1: not JSON this audit can read",
        ),
    ],
)
def test_unreadable_records_exit_2_with_a_sentence_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], records: Any, message: str
) -> None:
    path = records(tmp_path)
    code, out, err = run([str(path), "--model", str(MANIFEST)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"equiguard audit: {tmp_path}/")
    assert message in err and len(err) < 400


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (lambda text: text.encode("utf-16"), "model.yaml: not UTF-8 text (byte 0)"),
        (
            lambda text: text.replace(
                "of: [race, sex]",
                "of: [race, sex, age_band, payer, language, adi_quintile]",
            ).encode(),
            "model.yaml: spec.subgroups.intersections[0]: makes 2400 groups; a model may have "
            "at most 2000 subgroup cells",
        ),
    ],
)
def test_an_unreadable_or_oversized_manifest_exits_2_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: Any, message: str
) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(manifest(MANIFEST.read_text()))
    records = tmp_path / "records.csv"
    write_records(records, n=20)
    code, out, err = run([str(records), "--model", str(path)], capsys)
    assert (code, out) == (2, "")
    assert message in err


@pytest.mark.parametrize("first_column", ["timestamp", "score"])
def test_a_csv_with_a_byte_order_mark_reads_like_one_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first_column: str
) -> None:
    plain = tmp_path / "plain.csv"
    rows = write_records(plain, n=50)
    fields = [first_column, *(f for f in FIELDS if f != first_column)]
    with plain.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    marked = write_bytes(tmp_path / "marked.csv", b"\xef\xbb\xbf" + plain.read_bytes())
    reports = []
    for path in (plain, marked):
        code, out, err = run([str(path), "--model", str(MANIFEST), "--format", "json"], capsys)
        assert (code, err) == (0, "")
        reports.append(json.loads(out))
    assert reports[0] == reports[1]
    assert reports[1]["records"]["from"] == "2026-01-01T10:00:00Z"


def test_the_table_says_how_many_outcomes_each_undecided_slo_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The example: a floor short of a verdict needs a number; a ratio estimated on its
    # threshold cannot be decided by more outcomes at the current rates.
    records = ROOT / "examples" / "readmission" / "scored-records.csv"
    code, out, _ = run([str(records), "--model", str(MANIFEST)], capsys)
    assert code == 0
    ratio, floor = out.split("\n  calibration-payer: ")[1].split("\n  selection-rate-floor-adi: ")
    assert "outcomes still needed: about 133629 more positives per group" in floor
    assert "outcomes still needed: no number decides it at the current rates" in ratio
