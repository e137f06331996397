"""The synthetic tape: seeded day paths for any symbol, a pure function of
(seed, symbol, day), so the same seed gives the same tape in every run and every process.

`SyntheticTape` draws, per symbol and day: a close anchored near the symbol's price level (so
prices stay in a plausible band over many days), an opening gap (a few symbols per day are
pre-market gappers, +5..+20 % over the previous close), a momentum run and fade inside regular
hours, U-shaped intraday volume, and a log-price Brownian bridge between those anchors.
Consecutive days join exactly: a day starts at 04:00 on the previous day's 16:00 close and
post-market returns to that close by 20:00. The path shape itself is in path.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime

import numpy as np

from ibsim.market.calendar import NyseCalendar
from ibsim.market.path import WINDOW_SECONDS, DayPath, TapeError, spread_for
from ibsim.market.universe import DEFAULT_UNIVERSE, profile, stable_hash, unit

GAPPER_PROBABILITY = 0.08


def _normal(*parts: object) -> float:
    """A deterministic standard normal number from the parts (Box-Muller on two hashes)."""
    u1 = max(unit("n1", *parts), 1e-12)
    u2 = unit("n2", *parts)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _bridge(rng: np.random.Generator, sigmas: np.ndarray) -> np.ndarray:
    """A Brownian bridge with per-step standard deviations `sigmas`: len(sigmas) + 1 points,
    zero at both ends."""
    steps = sigmas * rng.standard_normal(len(sigmas))
    walk = np.concatenate(([0.0], np.cumsum(steps)))
    var = np.concatenate(([0.0], np.cumsum(sigmas * sigmas)))
    total = var[-1] if var[-1] > 0 else 1.0
    bridge: np.ndarray = walk - var / total * walk[-1]
    return bridge


class SyntheticTape:
    """Seeded synthetic paths for any symbol (see the module docstring)."""

    def __init__(self, seed: int, universe: Iterable[str] = (), calendar: NyseCalendar | None = None):
        self.seed = int(seed)
        self.calendar = calendar or NyseCalendar()
        self.universe = list(universe) or list(DEFAULT_UNIVERSE)
        self._closes: dict[tuple[str, date], float] = {}
        self._forced: dict[date, str] = {}
        self._back: dict[tuple[date, int], list[date]] = {}

    def symbols(self) -> list[str]:
        return list(self.universe)

    def default_start(self) -> datetime | None:
        """None: a synthetic run starts before the latest session's open (clock.default_start)."""
        return None

    # --- daily anchors -------------------------------------------------------------------
    def _forced_gapper(self, day: date) -> str:
        """At least one gapper a day: the universe symbol with the lowest gap draw."""
        if day not in self._forced:
            self._forced[day] = min(self.universe, key=lambda s: unit(self.seed, "gap", s, day)
                                    / max(profile(s).daily_vol, 1e-3))
        return self._forced[day]

    def is_gapper(self, symbol: str, day: date) -> bool:
        """Volatile (small) names gap more often than steady large caps."""
        p = GAPPER_PROBABILITY * min(profile(symbol).daily_vol / 0.04, 1.5)
        return unit(self.seed, "gap", symbol, day) < p or symbol == self._forced_gapper(day)

    def gap(self, symbol: str, day: date) -> float:
        """The opening gap fraction versus the previous close (gappers: +5..+20 %, the
        largest gaps for the most volatile names)."""
        vol = profile(symbol).daily_vol
        if self.is_gapper(symbol, day):
            return 0.05 + 0.15 * min(vol / 0.05, 1.0) * unit(self.seed, "gapsize", symbol, day)
        return math.exp(0.3 * vol * _normal(self.seed, "open", symbol, day)) - 1.0

    def _sessions_back(self, day: date, count: int) -> list[date]:
        """`day` (whatever it is) followed by the `count - 1` sessions before it."""
        key = (day, count)
        if key not in self._back:
            out = [day]
            d = day
            for _ in range(count - 1):
                d = self.calendar.previous_session(d)
                out.append(d)
            self._back[key] = out
        return self._back[key]

    def close_price(self, symbol: str, day: date) -> float:
        """The 16:00 close of a day (also the next day's previous close).

        Its log is the symbol's price level plus a moving average of the last ten days'
        shocks, gaps included: prices wander and gappers keep part of their gap for a few
        days, yet never drift away from the level, and no day depends on the order in which
        days were asked for."""
        key = (symbol, day)
        if key in self._closes:
            return self._closes[key]
        prof = profile(symbol)
        x = math.log(prof.price)
        for k, d in enumerate(self._sessions_back(day, 10)):
            x += prof.daily_vol * 0.8**k * _normal(self.seed, "close", symbol, d)
            if self.is_gapper(symbol, d):
                x += 0.7**k * (math.log(1.0 + self.gap(symbol, d))
                               + 0.5 * prof.daily_vol * _normal(self.seed, "gc", symbol, d))
        close = round(min(max(math.exp(x), 1.0), 2000.0), 2)
        self._closes[key] = close
        return close

    def prev_close(self, symbol: str, day: date) -> float:
        return self.close_price(symbol, self.calendar.previous_session(day))

    # --- the path --------------------------------------------------------------------------
    def day_path(self, symbol: str, day: date) -> DayPath:
        cal = self.calendar
        if not cal.is_session(day):
            raise TapeError(f"{day} is not an NYSE session; no tape for {symbol}")
        start, _ = cal.window(day)
        open_e, close_e = cal.open_close(day)
        open_idx, close_idx = int(open_e - start), int(close_e - start)
        n = WINDOW_SECONDS
        prof = profile(symbol)
        gapper = self.is_gapper(symbol, day)
        prev = self.prev_close(symbol, day)
        open_ = round(prev * (1.0 + self.gap(symbol, day)), 2)
        close = self.close_price(symbol, day)
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, stable_hash(symbol) & 0xFFFFFFFF,
                                     day.toordinal()])
        sig = prof.daily_vol / math.sqrt(23400.0)

        def u(tag: str) -> float:
            return unit(self.seed, tag, symbol, day)

        # pre-market: previous close -> open; gappers jump on "news" some time after 04:00
        lp, lo, lc = math.log(prev), math.log(open_), math.log(close)
        t = np.arange(open_idx + 1, dtype=np.float64)
        if gapper:
            news = 600 + u("news") * max(open_idx - 3600, 1)
            shape = 1.0 / (1.0 + np.exp(-(t - news) / 240.0))
            shape = (shape - shape[0]) / (shape[-1] - shape[0])
            pre_sig = np.full(open_idx, sig * 1.5)
        else:
            news = None
            shape = t / open_idx
            pre_sig = np.full(open_idx, sig * 0.4)
        pre = lp + (lo - lp) * shape + _bridge(rng, pre_sig)

        # regular hours: open -> close with a momentum run and fade, U-shaped volatility
        rth_len = close_idx - open_idx
        tr = np.arange(rth_len + 1, dtype=np.float64)
        u_shape = 1.0 + 1.5 * np.exp(-tr[:-1] / 1500.0) + 0.6 * np.exp(-(rth_len - tr[:-1]) / 1200.0)
        rth_sig = sig * u_shape / math.sqrt(float(np.mean(u_shape * u_shape)))
        bump = np.zeros(rth_len + 1)
        if u("run") < (0.85 if gapper else 0.3):
            t1 = (60 + u("t1") * 1800) if gapper else u("t1") * max(rth_len - 7200, 1)
            d1 = 300 + u("d1") * 2100
            d2 = 1200 + u("d2") * 6000
            mag = (0.02 + 0.08 * u("mag")) * (1.5 if gapper else 1.0)
            if u("dir") < 0.25:
                mag = -mag
            fade = 0.5 + 0.5 * u("fade")
            rise = np.clip((tr - t1) / d1, 0.0, 1.0)
            fall = np.clip((tr - t1 - d1) / d2, 0.0, 1.0)
            bump = mag * (rise - fade * fall)
            bump = bump - tr / rth_len * bump[-1]
        rth = lo + (lc - lo) * tr / rth_len + bump + _bridge(rng, rth_sig)

        # post-market: drift around the close and come back to it by 20:00
        post_len = n - close_idx
        post = lc + _bridge(rng, np.full(post_len, sig * 0.3))

        logp = np.concatenate((pre, rth[1:], post[1:]))
        price = np.round(np.exp(logp), 4)

        # volume: U-shaped in regular hours, busier on momentum and after a gapper's news
        adv = prof.adv * math.exp(0.3 * _normal(self.seed, "adv", symbol, day))
        if gapper:
            adv *= 3.0 + 7.0 * u("gvol")
        shares_pre, shares_rth, shares_post = (0.2, 0.72, 0.08) if gapper else (0.04, 0.9, 0.06)
        w_pre = 0.1 + (t[:-1] / open_idx) ** 2
        if news is not None:
            w_pre = w_pre + 4.0 * np.exp(-np.clip(t[:-1] - news, 0, None) / 1800.0) * (t[:-1] >= news)
        slope = np.abs(np.diff(bump)) / sig
        w_rth = u_shape * (1.0 + np.minimum(6.0 * slope, 8.0))
        w_post = 0.1 + np.exp(-np.arange(post_len) / 1800.0)
        lam = np.concatenate((
            adv * shares_pre * w_pre / w_pre.sum(),
            adv * shares_rth * w_rth / w_rth.sum(),
            adv * shares_post * w_post / w_post.sum(),
        ))
        volume = rng.poisson(lam / 100.0).astype(np.float64) * 100.0

        return DayPath(symbol=symbol, day=day, start=start, open_idx=open_idx,
                       close_idx=close_idx, price=price, volume=volume, prev_close=prev,
                       spread_ticks=spread_for(close, prof.spread_bps), interpolate=True)
