"""The three verdicts and their precedence."""

from __future__ import annotations

import json

from equiguard.engine.verdict import ORDER, Verdict, read_verdict, worst


def test_a_breach_outweighs_missing_evidence_which_outweighs_a_demonstration() -> None:
    assert worst([Verdict.MET, Verdict.INCONCLUSIVE, Verdict.VIOLATED]) == Verdict.VIOLATED
    assert worst([Verdict.MET, Verdict.INCONCLUSIVE]) == Verdict.INCONCLUSIVE
    assert worst([Verdict.MET, Verdict.MET]) == Verdict.MET


def test_no_verdict_at_all_is_inconclusive_never_a_pass() -> None:
    assert worst([]) == Verdict.INCONCLUSIVE


def test_the_precedence_names_every_verdict_once() -> None:
    assert sorted(ORDER) == sorted(Verdict)


def test_verdicts_are_written_as_the_words_status_and_records_carry() -> None:
    assert json.dumps([Verdict.MET, Verdict.VIOLATED]) == '["Met", "Violated"]'
    assert read_verdict("Violated") is Verdict.VIOLATED


def test_an_unrecognised_verdict_reads_as_inconclusive() -> None:
    assert read_verdict("Passed") is Verdict.INCONCLUSIVE
    assert read_verdict(None) is Verdict.INCONCLUSIVE
