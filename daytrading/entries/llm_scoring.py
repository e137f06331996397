"""Optional LLM scoring of scanner candidates (DeepSeek), with a heuristic fallback.

WHY: an LLM's read of a gapper can rank the watchlist and pick the profit target tier, but
it is slow, costs money and fails in ways the trading loop must never feel. So:

- `LlmScorer.score()` is async and bounded: each HTTP request has settings.llm.timeout_seconds
  and is retried at most settings.llm.max_retries times by the client, and asyncio.wait_for
  caps the whole call at `call_budget_seconds()` (all attempts plus the client's retry
  pauses), so even a misbehaving client cannot hold a task longer. Callers may also run it
  as a background task.
- Any problem (LLM disabled, no DEEPSEEK_API_KEY, a timeout, an API error, malformed output
  such as confidence outside 0-1 or missing fields) gives the documented heuristic score
  with source="heuristic" and, where the operator should know, a WarningEvent in
  `LlmScore.warnings` for the caller to write with db.record_event().
- Results are cached per symbol and trading day through the cache object passed in
  (duck-typed: `get_llm_analysis(symbol, date)` / `save_llm_analysis(symbol, date,
  payload)`; the observability database provides them), so a restart does not pay twice.
  Dates are passed as ISO strings ("2025-01-31"). Only LLM answers are cached.
- The LLM ranks and scores only: `LlmScore` has no size, stop or order fields, and the
  target tier comes from `daytrading.strategy.risk.confidence_target_pct()`, a fixed table in
  the settings.

The heuristic (no LLM), each part clipped to 0..1:
    gap part   g = (gap % - 2) / 8        (2% gap -> 0, 10% or more -> 1; unknown -> 0)
    volume     v = (relative volume - 1) / 4  (1x -> 0, 5x or more -> 1; unknown -> 0)
    RSI part   r = 1 at RSI <= 60, falling linearly to 0 at RSI 80 (unknown -> 0.5)
    confidence = min(0.8, 0.3 + 0.25 g + 0.25 v + 0.2 r)
Capped at 0.8, so without the LLM a candidate earns at most the medium target tier.

The API key comes from the environment (DEEPSEEK_API_KEY) or is handed in as the Secret
daytrading.config.secrets.load_secrets() read from the environment or .env; it is never logged.
settings.llm.base_url points the client at another OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationError

from daytrading.config.secrets import Secret, mask_secrets
from daytrading.config.settings import LlmSettings
from daytrading.scanner.base import Candidate, WarningEvent

ENV_KEY = "DEEPSEEK_API_KEY"
NEW_YORK = ZoneInfo("America/New_York")
HEURISTIC_MAX_CONFIDENCE = 0.8

SYSTEM_PROMPT = (
    "You score US stocks for a long-only intraday momentum strategy that trades pre-market "
    "gappers. For the one stock described, answer with: symbol (exactly as given); "
    "confidence, a number from 0 to 1 that the stock keeps rising today far enough to reach "
    "a +1.8% to +2.6% target before its stop; thesis, two or three sentences; risks, a short "
    "list. You only score: position size, stops and targets are fixed by the trading "
    "system. Use only the data given; when it is thin, give a low confidence."
)


class LlmAnalysis(BaseModel):
    """Score one stock for a long intraday momentum trade (ranking only)."""

    symbol: str = Field(min_length=1, max_length=12, description="The ticker, as given")
    confidence: float = Field(ge=0.0, le=1.0,
                              description="0-1: chance the stock reaches the target today")
    thesis: str = Field(min_length=1, max_length=2000, description="Why, in 2-3 sentences")
    risks: list[str] = Field(description="The main risks, a few words each")


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """Indicators and notes that inform a score (all optional)."""

    rsi: float | None = None
    vwap: float | None = None
    atr_pct: float | None = None
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LlmScore:
    """A candidate's score. Ranking and target tier only: no size, stop or order fields."""

    symbol: str
    confidence: float  # 0..1
    thesis: str
    risks: tuple[str, ...] = ()
    source: str = "heuristic"  # llm | heuristic
    cached: bool = False
    model: str = ""
    warnings: tuple[WarningEvent, ...] = ()


class LlmCache(Protocol):
    def get_llm_analysis(self, symbol: str, date: str) -> Any: ...

    def save_llm_analysis(self, symbol: str, date: str, payload: dict[str, Any]) -> Any: ...



def call_budget_seconds(llm: LlmSettings) -> float:
    """The longest one score() waits: every attempt's timeout plus the client's retry pauses
    (openai's: 0.5 s doubling, at most 8 s each) plus a second of slack."""
    retries = max(0, int(llm.max_retries))
    pauses = sum(min(0.5 * 2.0**i, 8.0) for i in range(retries))
    return llm.timeout_seconds * (retries + 1) + pauses + 1.0


def heuristic_score(candidate: Candidate, context: ScoreContext | None = None) -> LlmScore:
    """The documented no-LLM score (see the module docstring)."""
    rsi = _finite_or_none(context.rsi if context is not None else None)
    gap = _finite_or_none(candidate.gap_pct)
    rvol = _finite_or_none(candidate.relative_volume)
    g = _clip((gap - 2.0) / 8.0) if gap is not None else 0.0
    v = _clip((rvol - 1.0) / 4.0) if rvol is not None else 0.0
    r = _clip((80.0 - rsi) / 20.0) if rsi is not None else 0.5
    confidence = round(min(HEURISTIC_MAX_CONFIDENCE, 0.3 + 0.25 * g + 0.25 * v + 0.2 * r), 4)
    risks: list[str] = []
    if gap is None:
        risks.append("gap unknown")
    elif gap > 20.0:
        risks.append(f"large gap ({gap:.0f}%): gap-fill risk")
    if rvol is None:
        risks.append("relative volume unknown")
    elif rvol < 1.0:
        risks.append(f"volume not confirming ({rvol:.1f}x)")
    if rsi is not None and rsi > 70.0:
        risks.append(f"RSI {rsi:.0f}: overbought")
    parts = [
        f"gap {gap:+.1f}%" if gap is not None else "gap unknown",
        f"relative volume {rvol:.1f}x" if rvol is not None else "relative volume unknown",
        f"RSI {rsi:.0f}" if rsi is not None else "RSI unknown",
    ]
    return LlmScore(
        symbol=candidate.symbol,
        confidence=confidence,
        thesis=f"Heuristic score from {', '.join(parts)}.",
        risks=tuple(risks),
        source="heuristic",
    )



class LlmScorer:
    """Scores candidates with ChatDeepSeek (or an injected chat model), never failing."""

    def __init__(
        self,
        settings: LlmSettings,
        cache: LlmCache | None = None,
        *,
        model: Any = None,
        api_key: Secret | str | None = None,
        environ: Mapping[str, str] | None = None,
        today: Callable[[], date] | None = None,
        clock: Callable[[], float] = time.monotonic,
        failure_cooldown_seconds: float = 300.0,
        method: str = "function_calling",
    ) -> None:
        """`model`: a LangChain chat model to use instead of building ChatDeepSeek (tests).
        `api_key`: e.g. load_secrets().deepseek_api_key; default: DEEPSEEK_API_KEY from
        `environ` (os.environ).
        `today`: the trading date (New York) for the cache; default: the wall clock's.
        After a timeout or API error the LLM is left alone for `failure_cooldown_seconds`
        (heuristic scores meanwhile), so a dead endpoint does not cost a timeout per symbol.
        """
        self.settings = settings
        self.cache = cache
        self._model = model
        if api_key is not None:
            key = (api_key.reveal() if isinstance(api_key, Secret) else str(api_key)).strip()
        else:
            env = os.environ if environ is None else environ
            key = (env.get(ENV_KEY) or "").strip()
        self._api_key = Secret(key) if key else None  # registered: logs mask it
        self._today = today or (lambda: datetime.now(NEW_YORK).date())
        self._clock = clock
        self._cooldown = failure_cooldown_seconds
        self._method = method
        self._chain: Any = None
        self._paused_until = -math.inf
        self._unavailable_reported = False
        self._memo: dict[tuple[str, str], LlmScore] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def __repr__(self) -> str:  # never show the key
        return f"LlmScorer(model={self.settings.model!r}, enabled={self.settings.enabled})"

    async def score(
        self, candidate: Candidate, context: ScoreContext | None = None, *,
        day: date | None = None,
    ) -> LlmScore:
        """The LLM's score for today (cached), else the heuristic. Never raises."""
        if not self.settings.enabled:
            return heuristic_score(candidate, context)
        try:
            key = (candidate.symbol, (day or self._today()).isoformat())
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:  # a second caller for the same symbol waits and hits the cache
                return await self._score_locked(candidate, context, key)
        except Exception as exc:  # a bug here must cost a heuristic score, not the loop
            return self._fallback(candidate, context, [], "llm_error",
                                  _mask(f"{type(exc).__name__}: {exc}", self._api_key))

    async def _score_locked(
        self, candidate: Candidate, context: ScoreContext | None, key: tuple[str, str]
    ) -> LlmScore:
        symbol, day = key
        if key in self._memo:
            return replace(self._memo[key], cached=True, warnings=())
        warnings: list[WarningEvent] = []
        cached = self._read_cache(symbol, day, warnings)
        if cached is not None:
            self._memo[key] = cached
            return cached
        if self._clock() < self._paused_until:
            return _with(heuristic_score(candidate, context), warnings)
        chain = await self._get_chain(warnings)
        if chain is None:
            return _with(heuristic_score(candidate, context), warnings)
        try:
            answer = await asyncio.wait_for(
                chain.ainvoke(_messages(candidate, context)),
                timeout=call_budget_seconds(self.settings),
            )
        except TimeoutError:
            self._pause()
            return self._fallback(candidate, context, warnings, "llm_timeout",
                                  f"no answer within {call_budget_seconds(self.settings):.1f}s")
        except Exception as exc:  # the LLM must never break the trading loop
            self._pause()
            kind = "llm_timeout" if _is_timeout(exc) else "llm_error"
            return self._fallback(candidate, context, warnings, kind,
                                  _mask(f"{type(exc).__name__}: {exc}", self._api_key))
        analysis, problem = _analysis_from(answer, symbol)
        if analysis is None:
            return self._fallback(candidate, context, warnings, "llm_malformed",
                                  _mask(problem, self._api_key))
        score = LlmScore(symbol=symbol, confidence=analysis.confidence,
                         thesis=analysis.thesis.strip(),
                         risks=tuple(r.strip() for r in analysis.risks if r.strip()),
                         source="llm", model=self.settings.model)
        self._memo[key] = score
        self._write_cache(symbol, day, score, warnings)
        return _with(score, warnings)

    def _fallback(self, candidate: Candidate, context: ScoreContext | None,
                  warnings: list[WarningEvent], kind: str, detail: str) -> LlmScore:
        warnings.append(WarningEvent(
            kind=kind,
            message=f"LLM score for {candidate.symbol} failed ({detail[:300]}); using the "
                    "heuristic score instead.",
            data={"symbol": candidate.symbol, "model": self.settings.model}))
        return _with(heuristic_score(candidate, context), warnings)

    def _pause(self) -> None:
        self._paused_until = self._clock() + self._cooldown

    async def _get_chain(self, warnings: list[WarningEvent]) -> Any:
        """The structured-output runnable, built once (off the event loop: imports are slow)."""
        if self._chain is not None:
            return self._chain
        if self._model is None and self._api_key is None:
            if not self._unavailable_reported:
                self._unavailable_reported = True
                warnings.append(WarningEvent(
                    kind="llm_unavailable",
                    message=f"[llm] enabled is true but {ENV_KEY} is not set; scoring with the "
                            f"heuristic. Put {ENV_KEY}=<key> in the environment or .env, or "
                            "set [llm] enabled = false.",
                    data={"model": self.settings.model}))
            return None
        try:
            self._chain = await asyncio.to_thread(self._build_chain)
        except Exception as exc:  # e.g. a bad base_url: report once, then heuristic only
            if not self._unavailable_reported:
                self._unavailable_reported = True
                detail = _one_line(_mask(f"{type(exc).__name__}: {exc}", self._api_key))
                warnings.append(WarningEvent(
                    kind="llm_unavailable",
                    message=f"Cannot set up the LLM client ({detail}); scoring with the "
                            "heuristic. Check [llm] model and base_url.",
                    data={"model": self.settings.model}))
            self._paused_until = math.inf
            return None
        return self._chain

    def _build_chain(self) -> Any:
        model = self._model
        if model is None:
            from langchain_deepseek import ChatDeepSeek

            kwargs: dict[str, Any] = {
                "model": self.settings.model,
                "api_key": self._api_key.reveal() if self._api_key else None,
                "timeout": self.settings.timeout_seconds,
                "max_retries": self.settings.max_retries,
                "temperature": 0.1,
            }
            if self.settings.base_url:
                kwargs["base_url"] = self.settings.base_url
            model = ChatDeepSeek(**kwargs)
        return model.with_structured_output(LlmAnalysis, include_raw=True, method=self._method)

    def _read_cache(self, symbol: str, day: str, warnings: list[WarningEvent]
                    ) -> LlmScore | None:
        if self.cache is None:
            return None
        try:
            raw = self.cache.get_llm_analysis(symbol, day)
        except Exception as exc:  # a cache problem costs an LLM call, nothing more
            warnings.append(WarningEvent("llm_cache", f"Reading the LLM cache for {symbol} "
                                                      f"failed ({type(exc).__name__}: {exc}).",
                                         data={"symbol": symbol}))
            return None
        payload = _payload_from(raw)
        if payload is None:
            return None
        try:
            analysis = LlmAnalysis.model_validate(payload)
        except ValidationError:
            return None  # an old or damaged entry: score again
        if analysis.symbol.upper() != symbol.upper():
            return None
        return LlmScore(symbol=symbol, confidence=analysis.confidence, thesis=analysis.thesis,
                        risks=tuple(analysis.risks), source="llm", cached=True,
                        model=str(payload.get("model", "")))

    def _write_cache(self, symbol: str, day: str, score: LlmScore,
                     warnings: list[WarningEvent]) -> None:
        if self.cache is None:
            return
        payload = {"symbol": symbol, "confidence": score.confidence, "thesis": score.thesis,
                   "risks": list(score.risks), "source": "llm", "model": score.model,
                   "scored_at": datetime.now(NEW_YORK).isoformat(timespec="seconds")}
        try:
            self.cache.save_llm_analysis(symbol, day, payload)
        except Exception as exc:  # the score is still good; the next restart pays again
            warnings.append(WarningEvent("llm_cache", f"Saving the LLM score for {symbol} "
                                                      f"failed ({type(exc).__name__}: {exc}).",
                                         data={"symbol": symbol}))


def _messages(candidate: Candidate, context: ScoreContext | None) -> list[tuple[str, str]]:
    facts: dict[str, Any] = {
        "symbol": candidate.symbol,
        "price": candidate.price,
        "previous_close": candidate.prev_close,
        "gap_pct": _round(candidate.gap_pct),
        "volume_today": candidate.volume,
        "relative_volume": _round(candidate.relative_volume),
        "scanner": candidate.source,
        "scanner_rank": candidate.rank,
    }
    if candidate.notes:
        facts["trader_notes"] = candidate.notes
    if context is not None:
        facts.update({"rsi": _round(context.rsi), "vwap": context.vwap,
                      "atr_pct": _round(context.atr_pct)})
        if context.notes:
            facts["notes"] = context.notes
        facts.update({str(k): v for k, v in context.extra.items()})
    facts = {k: v for k, v in facts.items() if v is not None and v != ""}
    return [("system", SYSTEM_PROMPT),
            ("human", "Score this stock:\n" + json.dumps(facts, default=str, indent=1))]


def _analysis_from(answer: Any, symbol: str) -> tuple[LlmAnalysis | None, str]:
    """The validated analysis from with_structured_output(include_raw=True), or a problem."""
    if isinstance(answer, dict) and ("parsed" in answer or "parsing_error" in answer):
        parsed, error = answer.get("parsed"), answer.get("parsing_error")
    else:
        parsed, error = answer, None
    if error is not None:
        return None, f"output does not match the schema: {_one_line(str(error))}"
    if isinstance(parsed, dict):
        try:
            parsed = LlmAnalysis.model_validate(parsed)
        except ValidationError as exc:
            return None, f"output does not match the schema: {_one_line(str(exc))}"
    if not isinstance(parsed, LlmAnalysis):
        return None, "no structured answer in the reply"
    if not math.isfinite(parsed.confidence):
        return None, "confidence is not a number"
    if parsed.symbol.strip().upper() != symbol.upper():
        return None, f"the answer is about {parsed.symbol!r}, not {symbol}"
    return parsed, ""


def _payload_from(raw: Any) -> dict[str, Any] | None:
    """Accept the payload dict itself, a row dict with a "payload" key, or JSON text."""
    if isinstance(raw, dict) and "payload" in raw and "confidence" not in raw:
        raw = raw["payload"]
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def _with(score: LlmScore, warnings: list[WarningEvent]) -> LlmScore:
    return replace(score, warnings=score.warnings + tuple(warnings)) if warnings else score


def _is_timeout(exc: BaseException) -> bool:
    """The client's own timeouts (openai.APITimeoutError, httpx, LangChain's) by class name,
    so this module does not import the client libraries up front."""
    return isinstance(exc, TimeoutError) or any(
        "Timeout" in cls.__name__ for cls in type(exc).__mro__)


def _finite_or_none(x: float | None) -> float | None:
    """x when it is a real number; None for a missing, infinite or NaN value."""
    return x if x is not None and math.isfinite(x) else None


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _round(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 2)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _mask(text: str, secret: Secret | None) -> str:
    return mask_secrets(text, [secret.reveal()] if secret else [])
