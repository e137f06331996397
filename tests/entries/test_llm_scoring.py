"""LLM scoring: LangChain fake chat models for the logic, and ChatDeepSeek itself against a
local OpenAI-compatible server (127.0.0.1, free port)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import sys
import time
from datetime import date
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from pydantic import Field

from daytrading.config.secrets import Secret
from daytrading.config.settings import LlmSettings
from daytrading.entries.llm_scoring import (
    ENV_KEY,
    LlmScore,
    LlmScorer,
    ScoreContext,
    call_budget_seconds,
    heuristic_score,
)
from daytrading.scanner.base import Candidate
from daytrading.strategy.risk import confidence_target_pct
from tests.paths import FAKES


def _load_fake() -> Any:
    # By path: eventkit installs an unrelated top-level `tests` package that shadows ours.
    name = "fakes_openai_server_for_tests"
    if name not in sys.modules:
        path = FAKES / "openai_server.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


DAY = date(2025, 3, 4)
MOON = Candidate("MOON", price=4.8, prev_close=4.0, gap_pct=20.0, volume=3e6,
                 relative_volume=1.5, source="polygon", rank=1)


def run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout=timeout))


def enabled(**overrides: Any) -> LlmSettings:
    values: dict[str, Any] = {"enabled": True, "timeout_seconds": 2.0, "max_retries": 0}
    values.update(overrides)
    return LlmSettings(**values)


class DictCache:
    """The observability database's llm_analyses API, in a dict."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.gets = 0

    def get_llm_analysis(self, symbol: str, date: str) -> dict[str, Any] | None:
        self.gets += 1
        return self.rows.get((symbol, date))

    def save_llm_analysis(self, symbol: str, date: str, payload: dict[str, Any]) -> None:
        self.rows[(symbol, date)] = dict(payload)


class ToolCallingFakeModel(FakeMessagesListChatModel):
    """LangChain's fake chat model, able to take part in with_structured_output().

    bind_tools() ignores the tools (the scripted replies already carry tool calls), so the
    real structured-output parser (PydanticToolsParser) runs on the replies. `delay` makes
    each call slow without blocking the event loop.
    """

    delay: float = 0.0
    fail_with: str | None = None
    invocations: int = 0
    prompts: list[str] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None,
                         **kwargs: Any) -> Any:
        self.invocations += 1
        self.prompts.append(" ".join(str(m.content) for m in messages))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with:
            raise ConnectionError(self.fail_with)
        return self._generate(messages, stop=stop, **kwargs)


def reply(**args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "LlmAnalysis", "args": args,
                                              "id": "call_1", "type": "tool_call"}])


GOOD = {"symbol": "MOON", "confidence": 0.84, "thesis": "Strong gap on volume.",
        "risks": ["gap fill"]}


def fake_model(*replies: AIMessage, **kwargs: Any) -> ToolCallingFakeModel:
    return ToolCallingFakeModel(responses=list(replies) or [reply(**GOOD)], **kwargs)


# --- target tiers and the heuristic ------------------------------------------------------


def test_heuristic_formula():
    # g = (6-2)/8 = 0.5, v = (3-1)/4 = 0.5, r = (80-70)/20 = 0.5
    c = Candidate("ABC", gap_pct=6.0, relative_volume=3.0)
    score = heuristic_score(c, ScoreContext(rsi=70.0))
    assert score.confidence == pytest.approx(0.3 + 0.25 * 0.5 + 0.25 * 0.5 + 0.2 * 0.5)
    assert score.source == "heuristic" and score.symbol == "ABC"
    assert "gap +6.0%" in score.thesis and "RSI 70" in score.thesis


def test_heuristic_is_capped_below_the_high_tier_and_knows_what_it_lacks():
    strong = heuristic_score(Candidate("S", gap_pct=30.0, relative_volume=9.0),
                             ScoreContext(rsi=50.0))
    assert strong.confidence == 0.8
    assert confidence_target_pct(strong.confidence, LlmSettings()) == 1.8
    assert "large gap (30%): gap-fill risk" in strong.risks
    blind = heuristic_score(Candidate("B"))
    assert blind.confidence == pytest.approx(0.3 + 0.2 * 0.5)
    assert set(blind.risks) == {"gap unknown", "relative volume unknown"}
    hot = heuristic_score(Candidate("H", gap_pct=6.0, relative_volume=0.5),
                          ScoreContext(rsi=85.0))
    assert "RSI 85: overbought" in hot.risks and "volume not confirming (0.5x)" in hot.risks


def test_heuristic_rises_with_gap_and_volume_and_falls_with_rsi():
    def conf(gap: float, rvol: float, rsi: float) -> float:
        return heuristic_score(Candidate("X", gap_pct=gap, relative_volume=rvol),
                               ScoreContext(rsi=rsi)).confidence

    assert conf(3, 2, 65) < conf(5, 2, 65) < conf(5, 3, 65)
    assert conf(5, 3, 75) < conf(5, 3, 65)


def test_score_has_no_size_stop_or_order_fields():
    names = {f.name for f in dataclasses.fields(LlmScore)}
    assert names == {"symbol", "confidence", "thesis", "risks", "source", "cached", "model",
                     "warnings"}


# --- scoring with a fake chat model --------------------------------------------------------


def test_llm_score_is_parsed_cached_and_survives_a_restart():
    cache = DictCache()
    model = fake_model()
    score = run(LlmScorer(enabled(), cache, model=model).score(MOON, day=DAY))
    assert (score.source, score.confidence, score.cached) == ("llm", 0.84, False)
    assert score.thesis == "Strong gap on volume." and score.risks == ("gap fill",)
    assert score.warnings == ()
    assert cache.rows[("MOON", "2025-03-04")]["confidence"] == 0.84
    assert model.invocations == 1

    restarted_model = fake_model()
    again = run(LlmScorer(enabled(), cache, model=restarted_model).score(MOON, day=DAY))
    assert again.source == "llm" and again.cached and again.confidence == 0.84
    assert restarted_model.invocations == 0  # a restart does not pay twice

    tomorrow = run(LlmScorer(enabled(), cache, model=restarted_model)
                   .score(MOON, day=date(2025, 3, 5)))
    assert tomorrow.source == "llm" and restarted_model.invocations == 1


def test_the_observability_database_is_a_working_cache(tmp_path):
    from observability import get_database

    db = get_database(path=tmp_path / "history.db")
    try:
        model = fake_model()
        first = run(LlmScorer(enabled(), db, model=model).score(MOON, day=DAY))
        restarted = run(LlmScorer(enabled(), db, model=model).score(MOON, day=DAY))
        assert first.source == restarted.source == "llm"
        assert restarted.cached and restarted.confidence == first.confidence
        assert model.invocations == 1
        assert db.get_llm_analysis("MOON", DAY)["thesis"] == first.thesis
    finally:
        db.close()


def test_same_scorer_answers_repeats_from_memory():
    cache = DictCache()
    model = fake_model()
    scorer = LlmScorer(enabled(), cache, model=model)
    run(scorer.score(MOON, day=DAY))
    second = run(scorer.score(MOON, day=DAY))
    assert second.cached and model.invocations == 1 and cache.gets == 1


def test_concurrent_scores_for_one_symbol_pay_once():
    model = fake_model(delay=0.05)
    scorer = LlmScorer(enabled(), DictCache(), model=model)

    async def twice() -> list[LlmScore]:
        return list(await asyncio.gather(scorer.score(MOON, day=DAY),
                                         scorer.score(MOON, day=DAY)))

    first, second = run(twice())
    assert model.invocations == 1
    assert first.confidence == second.confidence == 0.84


@pytest.mark.parametrize(
    "bad",
    [
        {**GOOD, "confidence": 1.5},
        {**GOOD, "confidence": -0.1},
        {k: v for k, v in GOOD.items() if k != "thesis"},
        {k: v for k, v in GOOD.items() if k != "confidence"},
        {**GOOD, "symbol": "OTHER"},
    ],
)
def test_malformed_output_falls_back_to_the_heuristic(bad):
    cache = DictCache()
    score = run(LlmScorer(enabled(), cache, model=fake_model(reply(**bad))).score(MOON, day=DAY))
    assert score.source == "heuristic"
    assert score.confidence == heuristic_score(MOON).confidence
    assert [w.kind for w in score.warnings] == ["llm_malformed"]
    assert cache.rows == {}  # only LLM answers are cached


def test_no_tool_call_is_malformed():
    model = fake_model(AIMessage(content="I think MOON looks great!"))
    score = run(LlmScorer(enabled(), model=model).score(MOON, day=DAY))
    assert score.source == "heuristic"
    assert "no structured answer" in score.warnings[0].message


def test_call_budget_covers_every_attempt_and_the_pauses():
    assert call_budget_seconds(LlmSettings(timeout_seconds=20, max_retries=2)) == 20 * 3 + 1.5 + 1
    assert call_budget_seconds(LlmSettings(timeout_seconds=0.5, max_retries=0)) == 1.5
    assert call_budget_seconds(LlmSettings(timeout_seconds=1, max_retries=6)) == (
        7 + 0.5 + 1 + 2 + 4 + 8 + 8 + 1)


def test_timeout_falls_back_fast_and_pauses_the_llm():
    t = [0.0]
    model = fake_model(delay=5.0)
    settings = enabled(timeout_seconds=0.1)  # budget 1.1 s; the model would take 5 s
    scorer = LlmScorer(settings, model=model, clock=lambda: t[0],
                       failure_cooldown_seconds=60.0)
    started = time.monotonic()
    score = run(scorer.score(MOON, day=DAY))
    assert time.monotonic() - started < call_budget_seconds(settings) + 1.0
    assert score.source == "heuristic" and [w.kind for w in score.warnings] == ["llm_timeout"]
    other = Candidate("GAPR", gap_pct=15.0, relative_volume=0.45)
    paused = run(scorer.score(other, day=DAY))
    assert paused.source == "heuristic" and paused.warnings == ()
    assert model.invocations == 1  # the dead endpoint is left alone meanwhile
    t[0] = 61.0
    model.delay = 0.0
    assert run(scorer.score(MOON, day=DAY)).source == "llm"


def test_client_exception_falls_back_to_the_heuristic():
    model = fake_model(fail_with="connection refused")
    score = run(LlmScorer(enabled(), model=model).score(MOON, ScoreContext(rsi=55), day=DAY))
    assert score.source == "heuristic"
    assert score.confidence == heuristic_score(MOON, ScoreContext(rsi=55)).confidence
    assert [w.kind for w in score.warnings] == ["llm_error"]
    assert "connection refused" in score.warnings[0].message


def test_an_unexpected_failure_still_gives_a_score():
    def broken_today() -> date:
        raise RuntimeError("clock unavailable")

    score = run(LlmScorer(enabled(), model=fake_model(), today=broken_today).score(MOON))
    assert score.source == "heuristic" and [w.kind for w in score.warnings] == ["llm_error"]


def test_disabled_never_calls_the_model():
    model = fake_model()
    score = run(LlmScorer(LlmSettings(enabled=False), model=model).score(MOON, day=DAY))
    assert score.source == "heuristic" and score.warnings == () and model.invocations == 0


def test_no_api_key_warns_once_then_heuristic_quietly():
    scorer = LlmScorer(enabled(), DictCache(), environ={})
    first = run(scorer.score(MOON, day=DAY))
    assert first.source == "heuristic"
    assert [w.kind for w in first.warnings] == ["llm_unavailable"]
    assert ENV_KEY in first.warnings[0].message
    second = run(scorer.score(Candidate("GAPR", gap_pct=15.0), day=DAY))
    assert second.source == "heuristic" and second.warnings == ()


def test_broken_cache_costs_a_call_not_a_crash():
    class BrokenCache(DictCache):
        def get_llm_analysis(self, symbol: str, date: str) -> Any:
            raise OSError("database is locked")

        def save_llm_analysis(self, symbol: str, date: str, payload: dict[str, Any]) -> None:
            raise OSError("disk full")

    score = run(LlmScorer(enabled(), BrokenCache(), model=fake_model()).score(MOON, day=DAY))
    assert score.source == "llm" and score.confidence == 0.84
    assert [w.kind for w in score.warnings] == ["llm_cache", "llm_cache"]


def test_cache_rows_in_other_shapes_are_understood_and_damaged_ones_ignored():
    cache = DictCache()
    cache.rows[("MOON", "2025-03-04")] = {"id": 7, "payload": json.dumps(GOOD)}
    model = fake_model()
    score = run(LlmScorer(enabled(), cache, model=model).score(MOON, day=DAY))
    assert score.cached and score.confidence == 0.84 and model.invocations == 0

    cache.rows[("MOON", "2025-03-04")] = {"confidence": 7}
    rescored = run(LlmScorer(enabled(), cache, model=model).score(MOON, day=DAY))
    assert not rescored.cached and model.invocations == 1


def test_each_score_carries_its_own_context_into_the_prompt():
    gapr = Candidate("GAPR", gap_pct=15.0, relative_volume=0.45)
    model = fake_model(reply(**GOOD), reply(**{**GOOD, "symbol": "GAPR", "confidence": 0.72}))
    scorer = LlmScorer(enabled(), DictCache(), model=model)
    scores = [run(scorer.score(MOON, None, day=DAY)),
              run(scorer.score(gapr, ScoreContext(rsi=50), day=DAY))]
    assert [(s.symbol, s.confidence) for s in scores] == [("MOON", 0.84), ("GAPR", 0.72)]
    moon_prompt, gapr_prompt = model.prompts
    assert '"symbol": "MOON"' in moon_prompt and '"rsi"' not in moon_prompt
    assert '"symbol": "GAPR"' in gapr_prompt and '"rsi": 50' in gapr_prompt


# --- the real ChatDeepSeek client against a local OpenAI-compatible server ------------------


@pytest.fixture
def openai_server():
    server = _load_fake().FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("key_from", ["environment", "load_secrets"])
def test_chat_deepseek_against_local_server(openai_server, monkeypatch, key_from):
    cache = DictCache()
    settings = enabled(base_url=openai_server.base_url, timeout_seconds=5.0)
    if key_from == "environment":
        monkeypatch.setenv(ENV_KEY, "test-key")
        scorer = LlmScorer(settings, cache)
    else:
        monkeypatch.delenv(ENV_KEY, raising=False)
        scorer = LlmScorer(settings, cache, api_key=Secret("test-key"))
    context = ScoreContext(rsi=58.0, notes="sector strong")
    score = run(scorer.score(MOON, context, day=DAY))
    assert score.source == "llm" and score.warnings == ()
    assert score.confidence == 0.86 and score.risks == ("gap fill", "thin float")
    assert cache.rows[("MOON", "2025-03-04")]["model"] == "deepseek-chat"

    call = openai_server.calls[0]
    assert call.path == "/v1/chat/completions"
    assert call.authorization == "Bearer test-key"
    assert call.body["model"] == "deepseek-chat"
    tool = call.body["tools"][0]["function"]
    assert tool["name"] == "LlmAnalysis"
    assert set(tool["parameters"]["required"]) == {"symbol", "confidence", "thesis", "risks"}
    prompt = " ".join(m["content"] for m in call.body["messages"])
    assert '"gap_pct": 20.0' in prompt and '"rsi": 58.0' in prompt and "sector strong" in prompt
    assert "test-key" not in repr(scorer)


@pytest.mark.parametrize(("mode", "kind"), [("garbage", "llm_error"), ("slow", "llm_timeout"),
                                            ("malformed", "llm_malformed"),
                                            ("error", "llm_error")])
def test_chat_deepseek_failures_fall_back(openai_server, monkeypatch, mode, kind):
    monkeypatch.setenv(ENV_KEY, "test-key")
    openai_server.mode = mode
    settings = enabled(base_url=openai_server.base_url, timeout_seconds=0.5)
    started = time.monotonic()
    score = run(LlmScorer(settings, DictCache()).score(MOON, day=DAY))
    assert time.monotonic() - started < 4.0
    assert score.source == "heuristic"
    assert [w.kind for w in score.warnings] == [kind]
    assert all("test-key" not in w.message for w in score.warnings)
