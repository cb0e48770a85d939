"""Kubernetes quantities (500m, 8, 64Gi, 1e3) as exact numbers, so the operator compares requests
and limits as the API server's CEL quantity library does."""

from __future__ import annotations

import re
from decimal import Decimal

SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{f"{p}i": Decimal(1024) ** (i + 1) for i, p in enumerate("KMGTPE")},
}
NUMBER = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)")
EXPONENT = re.compile(r"[eE][+-]?[0-9]+")


def parse_quantity(text: str | int) -> Decimal:
    """The value of a quantity; ValueError when `text` is not one."""
    match = NUMBER.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = Decimal(match[1]), match[2]
    if suffix in SUFFIXES:
        return number * SUFFIXES[suffix]
    if EXPONENT.fullmatch(suffix):
        return number * Decimal(10) ** int(suffix[1:])
    raise ValueError(f"not a quantity: {text!r}")


def is_quantity(text: str | int) -> bool:
    """True when `text` parses as a quantity."""
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True
