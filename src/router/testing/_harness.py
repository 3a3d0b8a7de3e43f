"""What the harnesses (:class:`LocalCluster`, :class:`PatroniCluster`, :class:`PgBouncers`)
share: ``with`` starts one and closes it, whatever happened inside."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

__all__ = ["Harness"]


class Harness(ABC):
    @abstractmethod
    def start(self) -> Self:
        """Start everything; return once it serves. Starting a started harness is a no-op."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything and leave nothing behind. Idempotent."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
