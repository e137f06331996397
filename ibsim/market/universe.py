"""The simulator's symbols: a default universe of plausible US tickers and, for any symbol,
a deterministic profile (price level, daily volume, volatility, spread) and contract.

Why deterministic from the symbol text: every run, every process and every restart sees the
same contract ids and price levels without shared storage. Prices are rough levels, not
quotes of the real companies.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ibsim.model import ContractInfo

# symbol: (price level $, average daily volume in millions, daily volatility, exchange, name)
_TABLE: dict[str, tuple[float, float, float, str, str]] = {
    "AAPL": (190.0, 55, 0.015, "NASDAQ", "APPLE INC"),
    "MSFT": (285.0, 20, 0.014, "NASDAQ", "MICROSOFT CORP"),
    "NVDA": (120.0, 250, 0.030, "NASDAQ", "NVIDIA CORP"),
    "AMD": (150.0, 45, 0.030, "NASDAQ", "ADVANCED MICRO DEVICES"),
    "TSLA": (240.0, 90, 0.035, "NASDAQ", "TESLA INC"),
    "META": (280.0, 15, 0.020, "NASDAQ", "META PLATFORMS INC-CLASS A"),
    "AMZN": (180.0, 40, 0.018, "NASDAQ", "AMAZON.COM INC"),
    "GOOGL": (165.0, 25, 0.017, "NASDAQ", "ALPHABET INC-CL A"),
    "PLTR": (25.0, 60, 0.040, "NASDAQ", "PALANTIR TECHNOLOGIES INC-A"),
    "SOFI": (8.0, 50, 0.040, "NASDAQ", "SOFI TECHNOLOGIES INC"),
    "RIOT": (11.0, 30, 0.060, "NASDAQ", "RIOT PLATFORMS INC"),
    "MARA": (19.0, 40, 0.060, "NASDAQ", "MARA HOLDINGS INC"),
    "WULF": (5.0, 20, 0.070, "NASDAQ", "TERAWULF INC"),
    "RCAT": (4.0, 5, 0.090, "NASDAQ", "RED CAT HOLDINGS INC"),
    "BBAR": (9.0, 1, 0.050, "NYSE", "BBVA ARGENTINA-ADR"),
    "LBRT": (19.0, 4, 0.030, "NYSE", "LIBERTY ENERGY INC"),
    "INTC": (30.0, 40, 0.025, "NASDAQ", "INTEL CORP"),
    "F": (11.0, 50, 0.020, "NYSE", "FORD MOTOR CO"),
    "NIO": (5.0, 40, 0.050, "NYSE", "NIO INC-ADR"),
    "LCID": (3.0, 30, 0.050, "NASDAQ", "LUCID GROUP INC"),
    "RIVN": (12.0, 25, 0.045, "NASDAQ", "RIVIAN AUTOMOTIVE INC-A"),
    "HOOD": (22.0, 20, 0.045, "NASDAQ", "ROBINHOOD MARKETS INC - A"),
    "COIN": (220.0, 10, 0.050, "NASDAQ", "COINBASE GLOBAL INC -CLASS A"),
    "SNAP": (11.0, 25, 0.035, "NYSE", "SNAP INC - A"),
    "UBER": (70.0, 18, 0.022, "NYSE", "UBER TECHNOLOGIES INC"),
    "DKNG": (38.0, 9, 0.030, "NASDAQ", "DRAFTKINGS INC"),
    "AFRM": (35.0, 8, 0.050, "NASDAQ", "AFFIRM HOLDINGS INC"),
    "UPST": (30.0, 6, 0.060, "NASDAQ", "UPSTART HOLDINGS INC"),
    "CLSK": (12.0, 25, 0.065, "NASDAQ", "CLEANSPARK INC"),
    "HUT": (15.0, 8, 0.060, "NASDAQ", "HUT 8 CORP"),
    "SOUN": (6.0, 30, 0.070, "NASDAQ", "SOUNDHOUND AI INC-A"),
    "IONQ": (12.0, 10, 0.060, "NYSE", "IONQ INC"),
    "BBAI": (3.0, 15, 0.080, "NYSE", "BIGBEAR.AI HOLDINGS INC"),
    "SMCI": (45.0, 30, 0.060, "NASDAQ", "SUPER MICRO COMPUTER INC"),
    "MU": (100.0, 25, 0.030, "NASDAQ", "MICRON TECHNOLOGY INC"),
    "PYPL": (65.0, 15, 0.022, "NASDAQ", "PAYPAL HOLDINGS INC"),
    "SHOP": (75.0, 10, 0.035, "NYSE", "SHOPIFY INC - CLASS A"),
    "ROKU": (65.0, 5, 0.040, "NASDAQ", "ROKU INC"),
    "CVNA": (140.0, 4, 0.050, "NYSE", "CARVANA CO"),
    "GME": (23.0, 8, 0.060, "NYSE", "GAMESTOP CORP-CLASS A"),
    "AMC": (4.5, 20, 0.060, "NYSE", "AMC ENTERTAINMENT HLDS-CL A"),
    "PLUG": (3.0, 40, 0.060, "NASDAQ", "PLUG POWER INC"),
    "CHPT": (2.5, 20, 0.060, "NYSE", "CHARGEPOINT HOLDINGS INC"),
}

DEFAULT_UNIVERSE: tuple[str, ...] = tuple(_TABLE)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash that is the same in every process (unlike hash(), which is salted)."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def unit(*parts: object) -> float:
    """A deterministic uniform number in [0, 1) from the parts."""
    return stable_hash(*parts) / 2**64


def con_id(symbol: str) -> int:
    """Deterministic contract id (positive, fits in 32 bits like IB's)."""
    return 10_000_000 + stable_hash("conid", symbol) % 1_900_000_000


@dataclass(frozen=True, slots=True)
class SymbolProfile:
    symbol: str
    price: float  # typical price level
    adv: float  # average daily volume, shares
    daily_vol: float  # daily return standard deviation (fraction)
    spread_bps: float  # typical regular-hours spread, basis points of price
    exchange: str
    long_name: str


def profile(symbol: str) -> SymbolProfile:
    """The profile of a symbol: from the table, or derived deterministically from its name."""
    if symbol in _TABLE:
        price, adv_m, vol, exch, name = _TABLE[symbol]
    else:
        price = round(math.exp(math.log(2.5) + unit("px", symbol) * math.log(280 / 2.5)), 2)
        adv_m = round(math.exp(unit("adv", symbol) * math.log(50)), 2)  # 1M .. 50M
        vol = 0.015 + 0.06 * (1.0 - math.log(price / 2.0) / math.log(150.0))
        exch = "NASDAQ" if unit("exch", symbol) < 0.6 else "NYSE"
        name = f"{symbol} INC"
    # liquid names trade on a one-cent spread; thin or cheap ones a few basis points wider
    spread_bps = 0.3 + 6.0 / math.sqrt(max(adv_m, 0.1))
    return SymbolProfile(symbol, float(price), adv_m * 1e6, float(vol), spread_bps, exch, name)


def contract_info(symbol: str) -> ContractInfo:
    p = profile(symbol)
    return ContractInfo(symbol=symbol, con_id=con_id(symbol), exchange="SMART",
                        primary_exchange=p.exchange, currency="USD", long_name=p.long_name,
                        min_tick=0.01)
