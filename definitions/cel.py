"""CEL for definitions (cel-python): one environment, null-safe equality, programs compiled once per process.

Imported by the interpreter through the sandbox's pass-through, so the compile cache survives across runs."""

from __future__ import annotations

import functools

import celpy
from celpy import celtypes

ENVIRONMENT = celpy.Environment()


def _null_safe(compare: str):
    """CEL's heterogeneous equality: anything compared with null is simply unequal (cel-python raises)."""
    def op(a, b):
        if a is None or b is None:
            same = a is None and b is None
            return celtypes.BoolType(same if compare == "eq" else not same)
        return (celpy.evaluation.bool_eq if compare == "eq" else celpy.evaluation.bool_ne)(a, b)
    return op


FUNCTIONS = {"_==_": _null_safe("eq"), "_!=_": _null_safe("ne")}


@functools.lru_cache(maxsize=2048)
def program(expression: str):
    """Compiled once per expression (pure: same text, same program)."""
    return ENVIRONMENT.program(ENVIRONMENT.compile(expression), functions=FUNCTIONS)
