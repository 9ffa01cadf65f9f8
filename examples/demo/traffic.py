"""Synthetic patient traffic and its delayed outcomes, sent to the model's pods.

Each round admits a batch of patients from the synthetic cohort: their
predictions go through the sidecar of a ready pod (round robin), and the
outcomes of the *previous* round arrive now, as 30-day outcomes arrive days
after the prediction. Outcomes may go to any pod: the model's pods share one
PostgreSQL prediction store.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from equiguard.cohort import generate_cohort, outcome_messages, prediction_requests

CONCURRENCY = 32
# More patients of the smaller groups than a typical hospital sees, so that
# every group gathers enough outcomes within a few minutes of demo.
DEMO_RACE_MIX = {"White": 0.2, "Black": 0.2, "Asian": 0.2, "Hispanic": 0.2, "Other": 0.2}


@dataclass
class RoundResult:
    predictions: int = 0
    failed_predictions: int = 0
    outcomes_accepted: int = 0


@dataclass
class Traffic:
    """Sends rounds of patients to the pods and keeps one round of outcomes pending."""

    token: str
    seed: int = 2026
    round_size: int = 1500
    rounds_sent: int = 0
    pending_outcomes: list[dict[str, Any]] = field(default_factory=list)

    async def round(self, pod_ips: Sequence[str]) -> RoundResult:
        if not pod_ips:
            return RoundResult()
        prefix = f"demo-{self.seed}-{self.rounds_sent:04d}-"
        cohort = generate_cohort(
            self.round_size, seed=self.seed + self.rounds_sent, race_mix=DEMO_RACE_MIX
        )
        requests = prediction_requests(cohort, id_prefix=prefix)
        self.rounds_sent += 1
        result = RoundResult()
        timeout = aiohttp.ClientTimeout(total=30, sock_connect=3)
        # A pod deleted during the round leaves its address unanswered (no
        # one replies on the bridge): after one failed connection it gets no
        # more of this round's requests, rather than a timeout for each.
        gone: set[str] = set()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            targets = itertools.cycle(pod_ips)
            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def predict(body: dict[str, Any], headers: dict[str, str], ip: str) -> bool:
                async with semaphore:
                    if ip in gone:
                        return False
                    try:
                        async with session.post(
                            f"http://{ip}:8080/predict", json=body, headers=headers
                        ) as response:
                            await response.read()
                            return response.status == 200
                    except (TimeoutError, aiohttp.ClientConnectorError):
                        gone.add(ip)
                        return False
                    except aiohttp.ClientError:
                        return False

            answered = await asyncio.gather(
                *(predict(r.body, r.headers, next(targets)) for r in requests)
            )
            result.predictions = sum(answered)
            result.failed_predictions = len(answered) - result.predictions
            # Only predictions that were answered (and so recorded) get an outcome.
            messages = outcome_messages(cohort, id_prefix=prefix)
            outcomes = [m for m, ok in zip(messages, answered, strict=True) if ok]
            due, self.pending_outcomes = self.pending_outcomes, outcomes
            accepted, undelivered = await self._send_outcomes(session, pod_ips[0], due)
            result.outcomes_accepted = accepted
            # A feed retries what did not reach any sidecar (a pod being replaced).
            self.pending_outcomes = undelivered + self.pending_outcomes
        return result

    async def _send_outcomes(
        self, session: aiohttp.ClientSession, ip: str, outcomes: list[dict[str, Any]]
    ) -> tuple[int, list[dict[str, Any]]]:
        """Sends outcomes in batches; returns how many joined and those not delivered."""
        accepted = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        for start in range(0, len(outcomes), 1000):
            batch = outcomes[start : start + 1000]
            try:
                async with session.post(
                    f"http://{ip}:8080/v1/outcomes", json={"outcomes": batch}, headers=headers
                ) as response:
                    response.raise_for_status()
                    answer = await response.json()
            except (TimeoutError, aiohttp.ClientError):
                return accepted, outcomes[start:]
            accepted += int(answer.get("accepted", 0))
        return accepted, []
