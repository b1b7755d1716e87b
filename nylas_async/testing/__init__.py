"""
An in-memory fake of the Nylas v3 webhooks API, for tests and demos.

`FakeNylas` holds the destinations and serves them as an aiohttp
application; `FakeServer` runs it on a loopback port. The fake can
misbehave on purpose with scripted `Fault` s or `RandomFaults`, and keeps
a `RecordedRequest` for every request it receives. With
``verify_challenge=True`` it challenges the webhook URL of each create
as Nylas does, contacting nothing but ``127.0.0.1``.
"""

from ._fake import FakeNylas, RecordedRequest
from ._faults import Fault, RandomFaults
from ._server import FakeServer

__all__ = [
    "FakeNylas",
    "FakeServer",
    "Fault",
    "RandomFaults",
    "RecordedRequest",
]
