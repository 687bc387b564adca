"""Analysis conditions are CEL expressions; compile them at lint time so a typo is found before a
rollout depends on it."""

from __future__ import annotations

import functools
from typing import Any

import celpy
from celpy.celparser import CELParseError

# Grammar token names of the CEL parser, as the user would write them.
_PUNCTUATION = {
    "COMMA": "','",
    "COLON": "':'",
    "RPAR": "')'",
    "RSQB": "']'",
    "RBRACE": "'}'",
    "LPAR": "'('",
}
_OPERATORS = {"PLUS", "STAR", "SLASH", "PERCENT", "LESSTHAN", "MORETHAN", "IN", "QMARK"}
# Tokens that begin a value: when the parser wanted one of these, it wanted an operand.
_OPERANDS = {"IDENT", "INT_LIT", "UINT_LIT", "FLOAT_LIT", "STRING_LIT", "BOOL_LIT", "NULL_LIT", "BYTES_LIT"}


@functools.cache
def _environment() -> celpy.Environment:
    return celpy.Environment()


def compile_error(expression: str) -> str | None:
    """None when `expression` compiles; otherwise what the parser found and what it expected."""
    if not expression.strip():
        return f"must be a CEL expression such as 'result >= 0.95' (got {expression!r})"
    try:
        _environment().compile(expression)
    except CELParseError as exc:
        return f"invalid CEL expression {expression!r}: {_explain(expression, exc)}"
    except Exception as exc:  # the CEL package raises its own error types for semantic faults
        return f"invalid CEL expression {expression!r}: {exc}"
    return None


def _explain(expression: str, exc: CELParseError) -> str:
    # celpy keeps only a caret picture; the parser's own error (lark's) says what it met and wanted.
    cause: Any = exc.__cause__ or exc.__context__
    line, column = getattr(cause, "line", None) or exc.line, getattr(cause, "column", None) or exc.column
    where = ""
    if isinstance(column, int) and column > 0:
        where = f" at character {column}"
        if "\n" in expression.strip() and isinstance(line, int):
            where = f" at line {line}, character {column}"
    token = getattr(cause, "token", None)
    char = getattr(cause, "char", None)
    expected = set(getattr(cause, "expected", None) or getattr(cause, "allowed", None) or ())
    if token is not None and getattr(token, "type", None) == "$END":
        found = "the expression ends too early"
    elif token is not None:
        found = f"unexpected {str(token)!r}{where}"
    elif isinstance(char, str) and char in "\"'":
        return f"unterminated string{where}"
    elif isinstance(char, str):
        found = f"unexpected character {char!r}{where}"
    else:
        return f"syntax error{where}"
    if expected & _OPERANDS:
        return f"{found}; expected a value (a name, a literal or a parenthesised expression)"
    if expected & _OPERATORS:
        return f"{found}; expected an operator such as ==, <, &&, || or +"
    words = sorted(_PUNCTUATION[t] for t in expected if t in _PUNCTUATION)
    if words:
        return f"{found}; expected {' or '.join(words)}"
    return found
