"""gRPC status codes for reference errors, as containerd's ``errdefs.ToGRPC`` picks them.

behaviors.md ERR-001: the innermost classified error of the cause chain decides;
everything else is ``UNKNOWN``. One table, one function, used by the service and the
gRPC server alike.
"""

from __future__ import annotations

import concurrent.futures

from refpull.cri.images import InvalidImage
from refpull.errors import (
    AlreadyExists,
    DigestMismatch,
    InvalidArgument,
    NoMatchingPlatform,
    NotFound,
    NotFoundInStore,
    RefpullError,
    SizeMismatch,
)

__all__ = ["ServiceError", "grpc_code"]

# Typed classes first (errdefs classes in Go's cause chain), then the class text that
# errdefs errors end with when wrapped (errors.Wrap keeps the class as the suffix).
_CLASS_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (NotFoundInStore, "NOT_FOUND"),
    (NotFound, "NOT_FOUND"),
    (NoMatchingPlatform, "NOT_FOUND"),
    (AlreadyExists, "ALREADY_EXISTS"),
    (DigestMismatch, "FAILED_PRECONDITION"),
    (SizeMismatch, "FAILED_PRECONDITION"),
    (InvalidImage, "INVALID_ARGUMENT"),
    (InvalidArgument, "INVALID_ARGUMENT"),
    (concurrent.futures.CancelledError, "CANCELLED"),
)
_SUFFIX_CODES = (
    (": not found", "NOT_FOUND"),
    (": already exists", "ALREADY_EXISTS"),
    (": failed precondition", "FAILED_PRECONDITION"),
    (": invalid argument", "INVALID_ARGUMENT"),
    (": unavailable", "UNAVAILABLE"),
    (": not implemented", "UNIMPLEMENTED"),
    ("context canceled", "CANCELLED"),
    ("context deadline exceeded", "DEADLINE_EXCEEDED"),
)


def grpc_code(exc: BaseException) -> str:
    """The gRPC status code name containerd answers for *exc* (behaviors.md ERR-001).

    The innermost classified error of the ``__cause__`` chain decides (Go
    ``errors.Cause`` + ``errdefs.ToGRPC``): NotFound, AlreadyExists,
    FailedPrecondition (digest/size commit mismatch), InvalidArgument, Unavailable,
    Unimplemented, Canceled, DeadlineExceeded; anything else is ``UNKNOWN``.

    Args:
        exc: the error, usually a :class:`ServiceError`.

    Returns:
        A ``grpc.StatusCode`` member name, e.g. ``"NOT_FOUND"``.
    """
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__
    for error in reversed(chain):
        for cls, code in _CLASS_CODES:
            if isinstance(error, cls):
                return code
        if isinstance(error, RefpullError) and not isinstance(error, ServiceError):
            text = str(error)
            for suffix, code in _SUFFIX_CODES:
                if text.endswith(suffix):
                    return code
    return "UNKNOWN"


class ServiceError(RefpullError):
    """An ImageService call failed; ``grpc_code`` is the status to answer with."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.__cause__ = cause
        self.grpc_code = grpc_code(self)
