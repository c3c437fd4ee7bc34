"""A row the database refuses for its content is refused again on every retry: fail the step for good."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DataError
from temporalio.exceptions import ApplicationError

P = ParamSpec("P")
R = TypeVar("R")
_TABLE = re.compile(r"^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+\"?(\w+)", re.IGNORECASE)


def bad_data_is_final(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a DataError (a value too long, out of range, not encodable) into a non-retryable failure
    naming the table, so the journey records the failed step instead of the activity retrying for ever."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DataError as err:
            table = _TABLE.match(err.statement or "")
            problem = str(err.orig).splitlines()[0] if err.orig is not None else "refused"
            where = f"table {table[1]}" if table else "the database"
            raise ApplicationError(
                f"{where} refused the row: {problem}", type="DataError", non_retryable=True
            ) from None

    return guarded
