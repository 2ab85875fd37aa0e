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

# Static bounds on an expression, checked when a definition is validated: a CEL program cannot be interrupted
# once it runs inside a workflow task, so what it may do is bounded before it is ever published.
MAX_CHARS = 1000
MAX_DEPTH = 24  # of grouping: parentheses, lists, maps, calls (not of the grammar's rule chain)
MAX_CALLS = 16  # functions and macros (size, exists, map, ...)
_NESTING = {"paren_expr", "list_lit", "map_lit", "ident_arg", "member_dot_arg", "member_index"}
_CALLS = {"ident_arg", "member_dot_arg"}


def bounds_problem(expression: str, tree=None) -> str | None:
    """What makes `expression` too big to run in a workflow task, or None. `tree`: its compiled parse tree."""
    if len(expression) > MAX_CHARS:
        return f"expression of {len(expression):,} characters (at most {MAX_CHARS:,})"
    if tree is None:
        return None
    calls, deepest, stack = 0, 0, [(tree, 0)]
    while stack:  # iterative: the tree of a deep expression is deep
        node, depth = stack.pop()
        data = getattr(node, "data", None)
        if data is None:
            continue
        calls += data in _CALLS
        depth += data in _NESTING
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.children)
    if deepest > MAX_DEPTH:
        return f"expression nested {deepest} deep (at most {MAX_DEPTH})"
    if calls > MAX_CALLS:
        return f"expression with {calls} function calls (at most {MAX_CALLS})"
    return None


@functools.lru_cache(maxsize=2048)
def program(expression: str):
    """Compiled once per expression (pure: same text, same program)."""
    return ENVIRONMENT.program(ENVIRONMENT.compile(expression), functions=FUNCTIONS)
