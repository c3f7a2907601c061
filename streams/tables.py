"""Writing Faust tables from batched or hand-driven streams."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def processing(event: EventT) -> Iterator[None]:
    """Make ``event`` the current event, so table writes go to its partition.

    Faust picks a table's changelog partition from the current event; inside a
    ``take_events`` batch that is the last event read, not the one written for.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
