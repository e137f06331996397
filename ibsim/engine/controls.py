"""Control commands, history and scans: price overrides, halts, hand-held positions, fault
injection, saving the state file, historical bars and the scanner.

Why price overrides edit the day path itself: quotes, 5-second bars, historical bars, the
scanner and the matcher all read the same arrays, so a forced price is seen consistently by
all of them (set_price never makes bars and ticks disagree).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

from ibsim.engine import snapshot
from ibsim.engine.core import EngineCore
from ibsim.market.calendar import NY, ny_date
from ibsim.market.path import aggregate_bars, span_bar
from ibsim.model import BarData, ScanRow

SCANNER_CODES = ("TOP_PERC_GAIN", "TOP_PERC_LOSE", "HOT_BY_VOLUME", "MOST_ACTIVE")


class Controls(EngineCore):
    """What the ctl commands and the history/scanner requests do to the shared state."""

    def _require_symbol(self, symbol: str) -> str:
        symbol = symbol.upper()
        if symbol not in self._known:
            raise ValueError(f"unknown symbol {symbol!r}: the simulator knows "
                             f"{', '.join(sorted(self._known)[:12])}...; add it with "
                             f"--symbols or a scenario file")
        return symbol

    # ------------------------------------------------------------------ prices
    def set_price(self, symbol: str, price: float, hold: bool) -> None:
        """Move a symbol's price to `price` now. hold=False: a jump, after which the tape
        continues from the new level; hold=True: frozen there until release_price."""
        symbol = self._require_symbol(symbol)
        if not price or price <= 0 or not math.isfinite(price):
            raise ValueError(f"price must be a positive number, got {price!r}")
        now = self.clock.now_epoch()
        feed = self._feed(symbol, self._session_at(now))
        path = feed.path
        i = min(int(path.offset(now)), path.n)
        if hold:
            path.price[i:] = price
            self._holds[symbol] = float(price)
        else:
            current = path.price_at(now)
            path.price[i:] *= price / current
            self._holds.pop(symbol, None)
        path.mutated = True
        self._dirty = True

    def release_price(self, symbol: str) -> None:
        """End a set_price override: the symbol returns to its own tape from now on."""
        symbol = self._require_symbol(symbol)
        self._holds.pop(symbol, None)
        now = self.clock.now_epoch()
        feed = self._feed(symbol, self._session_at(now))
        path = feed.path
        fresh = self._build_path(symbol, path.day)
        i = min(int(path.offset(now)), path.n)
        path.price[i:] = fresh.price[i:]

    def halt(self, symbol: str, halted: bool = True) -> None:
        """Halt (no fills, quotes frozen and flagged) or resume a symbol. On resume the price
        jumps to wherever the tape is now, and orders only see the tape from now on."""
        symbol = self._require_symbol(symbol)
        now = self.clock.now_epoch()
        feed = self._feed(symbol, self._session_at(now))
        if halted and feed.quote is None:
            feed.update(now, self._session_at(now).regular(now))
        feed.halted = halted
        if not halted:
            for st in self.book.working(symbol):
                st.since = max(st.since, now)

    # ------------------------------------------------------------------ account
    def add_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        """A position held by hand outside the suite: it becomes a normal broker position
        (an unknown symbol joins the universe)."""
        symbol = symbol.upper()
        if not quantity or not avg_cost or avg_cost <= 0:
            raise ValueError("add_position needs a non-zero quantity and a positive avg_cost")
        self._known.add(symbol)
        self.account.add_hand_held(symbol, float(quantity), float(avg_cost))
        self._dirty = True
        if self.listener is not None:
            self.listener.on_position(self.account.row(symbol))
            self._emit_account()

    # ------------------------------------------------------------------ fault injection
    def reject_next(self, code: int, client_id: int | None) -> None:
        """The next new order (from that client, or from anyone) is rejected with `code`."""
        self._reject_next = (int(code), client_id)

    def delay_cancel(self, seconds: float) -> None:
        """Cancels take effect `seconds` wall seconds after they arrive (0 = immediately)."""
        if seconds < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {seconds}")
        self._cancel_delay = float(seconds)

    def save_state(self) -> None:
        """Write the account, positions, orders and counters to the --state-file now."""
        if not self.config.state_file:
            raise ValueError("no state file configured: start ibsim with --state-file PATH")
        snapshot.write_json_atomic(self.config.state_file, snapshot.snapshot(
            self.book, self.account, sim_now=self.now(),
            extra_symbols=sorted(self._known - set(self._tape.symbols())),
            held_prices=self._holds))
        self._dirty = False

    def restore_state(self, path: str) -> bool:
        """Load a --state-file written by save_state into this fresh engine. False if there
        is no file yet; StateError if it cannot be used."""
        restored = snapshot.load(path, self.book, self.account)
        if restored is None:
            return False
        self._known |= restored.symbols
        self._holds.update(restored.held_prices)
        return True

    # ------------------------------------------------------------------ history and scans
    def historical_bars(self, symbol: str, end: datetime | None, duration_seconds: int,
                        bar_seconds: int, use_rth: bool) -> list[BarData]:
        """Bars from the same tape as the live quotes, ending at `end` (never after sim now).
        bar_seconds >= 86400 gives one bar per session (time = the session date, 00:00 ET)."""
        symbol = symbol.upper()
        if symbol not in self._known or bar_seconds <= 0 or duration_seconds <= 0:
            return []
        now = self.clock.now_epoch()
        end_e = min(end.timestamp(), now) if end is not None else now
        start_e = end_e - duration_seconds
        daily = bar_seconds >= 86400
        first = ny_date(start_e)
        if daily:  # "N D" of daily bars means N sessions, as at IB
            first = ny_date(end_e) - timedelta(days=int(duration_seconds // 86400 * 1.6) + 7)
        days = self.calendar.sessions_between(first, ny_date(end_e))
        bars: list[BarData] = []
        for day in days:
            path = self._path(symbol, day)
            lo, hi = path.start, path.end
            if use_rth:
                lo, hi = self.calendar.open_close(day)
            hi = min(hi, end_e)
            if daily:
                if hi <= lo:
                    continue
                label = datetime.combine(day, time(0), NY).astimezone(UTC)
                bar = span_bar(path, lo, hi, label)
                if bar is not None:
                    bars.append(bar)
            else:
                bars.extend(aggregate_bars(path, max(lo, start_e), hi, bar_seconds))
        if daily:
            n = max(int(duration_seconds // 86400), 1)
            bars = bars[-n:]
        return bars

    def scanner(self, scan_code: str, rows: int) -> list[ScanRow]:
        """TOP_PERC_GAIN / TOP_PERC_LOSE (versus the previous close) or HOT_BY_VOLUME /
        MOST_ACTIVE (session volume so far), over the known symbols, at sim now."""
        code = scan_code.upper()
        if code not in SCANNER_CODES:
            raise ValueError(f"unknown scan code {scan_code!r}; the simulator supports "
                             f"{', '.join(SCANNER_CODES)}")
        now = self.clock.now_epoch()
        day = self._session_at(now).day
        scored: list[tuple[float, str]] = []
        for symbol in sorted(self._known):
            path = self._path(symbol, day)
            if code in ("TOP_PERC_GAIN", "TOP_PERC_LOSE"):
                gain = path.price_at(now) / path.prev_close - 1.0 if path.prev_close else 0.0
                scored.append((gain if code == "TOP_PERC_GAIN" else -gain, symbol))
            else:
                scored.append((path.volume_between(0, int(path.offset(now))), symbol))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [ScanRow(rank=i, symbol=s) for i, (_, s) in enumerate(scored[:max(rows, 0)])]
