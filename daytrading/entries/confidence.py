"""LLM confidence for the day trader, scored in the background so trading never waits.

WHY: an LLM call takes seconds and can fail in many ways; a 30-second bar cannot wait for
it. `ConfidenceBook.request()` starts one background scoring task per symbol and day;
`current()` answers at once with the LLM's score when it is ready, else the documented
heuristic (daytrading.entries.llm_scoring.heuristic_score). The scorer caches LLM answers per symbol
and day in the database, so a restart does not pay twice. Every warning the scorer reports
(timeout, garbage, no key) is journaled by the caller's event sink.
The confidence only picks the target tier (risk.apply_llm_caps); it never raises size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date
from typing import Any

from daytrading.entries.llm_scoring import LlmScore, LlmScorer, ScoreContext, heuristic_score
from daytrading.scanner.base import Candidate, WarningEvent

log = logging.getLogger("day_trader")


class ConfidenceBook:
    def __init__(self, scorer: LlmScorer | None, *, today: Callable[[], date],
                 on_warning: Callable[[WarningEvent, str], None]) -> None:
        self.scorer = scorer
        self.today = today
        self.on_warning = on_warning
        self.scores: dict[str, LlmScore] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._day: date | None = None

    @property
    def enabled(self) -> bool:
        return self.scorer is not None and self.scorer.settings.enabled

    def request(self, candidate: Candidate, context: ScoreContext | None = None) -> None:
        """Start scoring `candidate` in the background unless done or running already."""
        if not self.enabled:
            return
        self._roll_day()
        symbol = candidate.symbol
        if symbol in self.scores or symbol in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._score(candidate, context))
        self._tasks[symbol] = task
        task.add_done_callback(lambda _t: self._tasks.pop(symbol, None))

    def forget_fallbacks(self) -> None:
        """Drop heuristic stand-ins so the next request asks the LLM again (after a rescan)."""
        for symbol in [s for s, score in self.scores.items() if score.source != "llm"]:
            del self.scores[symbol]

    def current(self, candidate: Candidate, context: ScoreContext | None = None) -> LlmScore:
        """The LLM's score if ready, else the heuristic (never waits)."""
        self._roll_day()
        ready = self.scores.get(candidate.symbol)
        return ready if ready is not None else heuristic_score(candidate, context)

    def confidences(self) -> dict[str, float]:
        return {s: score.confidence for s, score in self.scores.items()}

    def pending(self) -> int:
        return len(self._tasks)

    async def _score(self, candidate: Candidate, context: ScoreContext | None) -> None:
        assert self.scorer is not None
        try:
            score = await self.scorer.score(candidate, context, day=self.today())
        except Exception as exc:  # noqa: BLE001 - score() promises not to raise; be sure
            self.on_warning(WarningEvent("llm_error", f"LLM scoring of {candidate.symbol} "
                                         f"crashed ({type(exc).__name__}: {exc}); heuristic "
                                         "score used"), candidate.symbol)
            score = heuristic_score(candidate, context)
        for warning in score.warnings:
            self.on_warning(warning, candidate.symbol)
        self.scores[candidate.symbol] = score
        log.info("%s: confidence %.2f (%s%s)", candidate.symbol, score.confidence, score.source,
                 ", cached" if score.cached else "")

    def _roll_day(self) -> None:
        today = self.today()
        if self._day != today:
            self._day = today
            self.scores.clear()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)


def context_from_state(state: Any, notes: str = "") -> ScoreContext:
    """Indicator context for a score from a MarketState (None-safe)."""
    if state is None:
        return ScoreContext(notes=notes)
    return ScoreContext(rsi=state.rsi, vwap=state.vwap, atr_pct=state.atr_pct, notes=notes)
