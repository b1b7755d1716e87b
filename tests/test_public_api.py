"""The public surface of the package."""

from __future__ import annotations

import types
from importlib.metadata import version

import nylas_async
import nylas_async.testing
from nylas_async import NylasError


def _public(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


class TestAll:
    def test_all_is_the_public_surface(self) -> None:
        """__all__ names exactly the public names the package defines."""
        assert set(nylas_async.__all__) == _public(nylas_async)

    def test_testing_all(self) -> None:
        """nylas_async.testing exports exactly its public names."""
        public = _public(nylas_async.testing)

        assert set(nylas_async.testing.__all__) == public

    def test_version_from_metadata(self) -> None:
        """__version__ is the installed distribution's version."""
        assert nylas_async.__version__ == version("nylas-async")


class TestErrors:
    def test_every_exception_derives_from_the_root(self) -> None:
        """Every exported exception class is a NylasError."""
        exported = [getattr(nylas_async, n) for n in nylas_async.__all__]
        errors = [
            e
            for e in exported
            if isinstance(e, type) and issubclass(e, BaseException)
        ]

        assert errors
        assert all(issubclass(e, NylasError) for e in errors)

    def test_builtin_kinds(self) -> None:
        """Errors that are a builtin kind also subclass that builtin."""
        assert issubclass(nylas_async.NylasTimeoutError, TimeoutError)
        assert issubclass(nylas_async.NylasConnectionError, ConnectionError)
        assert issubclass(nylas_async.UsageError, ValueError)
        assert issubclass(nylas_async.NotFoundError, LookupError)
