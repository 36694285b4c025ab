"""What every distribution API handler shares: the call context and name grammar."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from registry_sim.access import Scope
from registry_sim.storage import Storage
from registry_sim.wire import Headers, Request, Response

__all__ = [
    "API_VERSION_HEADER",
    "Call",
    "Handler",
    "is_repository_name",
    "is_tag",
    "parse_accept",
]

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

# https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
# "<name> MUST match the following regular expression:
#  [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
_NAME = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
# "<reference> as a tag MUST be at most 128 characters in length and MUST match
#  the following regular expression: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# distribution/reference: "the total length of a named reference MUST be <= 255".
_NAME_MAX = 255


def is_repository_name(name: str) -> bool:
    """Whether ``name`` is a valid repository name (``library/busybox``, ``a/b/c``)."""
    return len(name) <= _NAME_MAX and _NAME.fullmatch(name) is not None


def is_tag(reference: str) -> bool:
    """Whether ``reference`` is a valid tag."""
    return _TAG.fullmatch(reference) is not None


def parse_accept(headers: Headers) -> set[str]:
    """The media types named in every ``Accept`` header, parameters dropped.

    Like distribution, ``q=`` weights are ignored and ``*/*`` is kept as a literal.
    """
    found: set[str] = set()
    for value in headers.get_all("Accept"):
        for item in value.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type:
                found.add(media_type)
    return found


@dataclass(frozen=True)
class Call:
    """One routed request: the path parameters plus what a handler may use."""

    request: Request
    storage: Storage
    #: the repository name from the path ("" for /v2/ and /v2/_catalog).
    name: str
    #: the last path parameter: a tag, digest or upload id ("" when absent).
    ref: str
    #: asks the app's auth policy about a second scope (cross-repository mount).
    authorize: Callable[[Scope], Response | None]
    accept_policy: str = "distribution"
    delete_enabled: bool = True

    def url(self, path: str) -> str:
        """An absolute URL on this registry, as distribution's URL builder makes."""
        host = self.request.host
        if not host:
            return path
        return f"{self.request.scheme}://{host}{path}"

    @property
    def is_head(self) -> bool:
        return self.request.method == "HEAD"


Handler = Callable[[Call], Response]
