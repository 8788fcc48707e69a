"""Instrument constants (spec "InverseETF Integration"): the owner's ETF_POOLS and INVERSE_ETF_TOP20, what each
inverse ETF tracks and its leverage, and the rule choosing the inverse ETF for a bearish signal (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

INVERSE_ETF_TOP20: tuple[str, ...] = (
    "SQQQ", "SPXU", "UVXY", "SDOW", "SRTY", "SH", "PSQ", "DOG", "TBF", "TBT",
    "TMV", "FAZ", "ERY", "REK", "DRIP", "YANG", "MYY", "RWM", "QID", "DXD",
)  # fmt: skip

ETF_POOLS: dict[str, tuple[str, ...]] = {
    "open": ("SH", "PSQ", "DOG", "SPXU", "SQQQ", "SDOW", "RWM", "MYY"),
    "mid": ("SQQQ", "SPXU", "SDOW", "SRTY", "QID", "DXD", "RWM", "MYY", "FAZ"),
    "close": ("SPXU", "SQQQ", "UVXY", "TMV", "TBT", "TBF", "ERY", "DRIP", "REK", "YANG"),
}

BROAD_MARKET_FALLBACK: tuple[str, ...] = ("SH", "PSQ")


@dataclass(frozen=True, slots=True)
class InverseEtf:
    symbol: str
    underlying: str  # index or sector it shorts
    leverage: int  # magnitude of the daily multiple (SH = 1 -> -1x)


# Every inverse ETF we know: the owner's top 20, plus SDS (S&P 500 -2x), which the sample data derives.
INVERSE_ETFS: dict[str, InverseEtf] = {
    e.symbol: e
    for e in (
        InverseEtf("SH", "SP500", 1), InverseEtf("SDS", "SP500", 2), InverseEtf("SPXU", "SP500", 3),
        InverseEtf("PSQ", "NASDAQ100", 1), InverseEtf("QID", "NASDAQ100", 2), InverseEtf("SQQQ", "NASDAQ100", 3),
        InverseEtf("DOG", "DOW30", 1), InverseEtf("DXD", "DOW30", 2), InverseEtf("SDOW", "DOW30", 3),
        InverseEtf("RWM", "RUSSELL2000", 1), InverseEtf("SRTY", "RUSSELL2000", 3),
        InverseEtf("MYY", "SP400_MIDCAP", 1),
        InverseEtf("FAZ", "FINANCIALS", 3), InverseEtf("ERY", "ENERGY", 2), InverseEtf("DRIP", "OIL_GAS_EP", 2),
        InverseEtf("REK", "REAL_ESTATE", 1), InverseEtf("YANG", "CHINA", 3), InverseEtf("UVXY", "VIX_FUTURES", 2),
        InverseEtf("TBF", "TREASURY_20Y", 1), InverseEtf("TBT", "TREASURY_20Y", 2), InverseEtf("TMV", "TREASURY_20Y", 3),
    )
}  # fmt: skip
# UVXY is long volatility (it rises when stocks fall); listed as the owner's bearish instrument, leverage 1.5x
# until 2018 and 2x now; recorded here as 2.

# Which index or sector a signal ticker belongs to. Tickers not listed fall back to the broad market.
TICKER_UNDERLYING: dict[str, str] = {
    "SPY": "SP500", "IVV": "SP500", "VOO": "SP500",
    "QQQ": "NASDAQ100", "DIA": "DOW30", "IWM": "RUSSELL2000", "MDY": "SP400_MIDCAP", "IJH": "SP400_MIDCAP",
    "XLF": "FINANCIALS", "KBE": "FINANCIALS", "XLE": "ENERGY", "XOP": "OIL_GAS_EP", "IYR": "REAL_ESTATE",
    "FXI": "CHINA", "TLT": "TREASURY_20Y",
    # sample data: synthetic mid-caps (derived, see tbot_bot/data/sample/README.md)
    "SYN1": "SP400_MIDCAP", "SYN2": "SP400_MIDCAP", "SYN3": "RUSSELL2000", "SYN4": "SP400_MIDCAP",
    "SYN5": "FINANCIALS", "SYN6": "SP400_MIDCAP", "SYN7": "RUSSELL2000", "SYN8": "ENERGY",
}  # fmt: skip


def is_inverse_etf(symbol: str) -> bool:
    return symbol.upper() in INVERSE_ETFS


def inverse_etf_candidates(ticker: str, strategy: str) -> list[str]:
    """Inverse ETFs for a bearish signal on `ticker`, in order of preference: the strategy's pool entries that
    track the ticker's index/sector (lowest leverage first, then pool order), then the broad-market
    fallback SH, PSQ."""
    underlying = TICKER_UNDERLYING.get(ticker.upper())
    pool = ETF_POOLS[strategy]
    mapped = [s for s in pool if underlying is not None and INVERSE_ETFS[s].underlying == underlying]
    mapped.sort(key=lambda s: (INVERSE_ETFS[s].leverage, pool.index(s)))
    return mapped + [s for s in BROAD_MARKET_FALLBACK if s not in mapped]


def pick_inverse_etf(
    ticker: str, strategy: str, passes_filters: Callable[[str], bool] | None = None
) -> str | None:
    """The first candidate that passes the caller's price/volume/spread filters (DESIGN §7); None if none."""
    for symbol in inverse_etf_candidates(ticker, strategy):
        if passes_filters is None or passes_filters(symbol):
            return symbol
    return None


def leverage_of(symbol: str) -> int | None:
    etf = INVERSE_ETFS.get(symbol.upper())
    return etf.leverage if etf else None


def signal_universe(symbols: Sequence[str]) -> list[str]:
    """Symbols that can carry a signal: everything except inverse ETFs (they are only ever instruments)."""
    return [s for s in symbols if not is_inverse_etf(s)]
