"""What a request asks to do, and the protocol an auth policy implements.

:class:`RegistryApp` works out the :class:`Scope` of every request from its route and
asks the configured :class:`AuthPolicy` before the handler runs; the policies
themselves (Basic, bearer tokens, personalities) live in ``auth.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from registry_sim.wire import Request, Response

__all__ = ["AuthPolicy", "Scope"]

# The order distribution prints actions in scope strings ("pull,push").
_ACTION_ORDER = {"pull": 0, "push": 1, "delete": 2, "*": 3}


@dataclass(frozen=True)
class Scope:
    """A resource and the actions a request needs on it.

    ``str(scope)`` is the token-scope form used in ``WWW-Authenticate`` challenges,
    e.g. ``repository:library/busybox:pull,push`` or ``registry:catalog:*``.

    Args:
        repository: the repository name (``library/busybox``), or the resource name
            for non-repository scopes (``catalog``).
        actions: ``pull``, ``push``, ``delete`` or ``*``.
        resource_type: ``repository`` (the default) or ``registry`` for ``_catalog``.
    """

    repository: str
    actions: frozenset[str] = field(default_factory=frozenset)
    resource_type: str = "repository"

    @classmethod
    def pull(cls, repository: str) -> Scope:
        """The scope of a read (GET/HEAD) on ``repository``."""
        return cls(repository, frozenset({"pull"}))

    @classmethod
    def push(cls, repository: str) -> Scope:
        """The scope of an upload to ``repository`` (distribution asks pull and push)."""
        return cls(repository, frozenset({"pull", "push"}))

    def sorted_actions(self) -> list[str]:
        """The actions in distribution's order: pull, push, delete, then the rest."""
        return sorted(self.actions, key=lambda a: (_ACTION_ORDER.get(a, 9), a))

    def __str__(self) -> str:
        # https://distribution.github.io/distribution/spec/auth/scope/
        # "resourcetype:resourcename:action[,action]"
        return (
            f"{self.resource_type}:{self.repository}:{','.join(self.sorted_actions())}"
        )


class AuthPolicy(Protocol):
    """Decides whether a request may proceed.

    ``scope`` is ``None`` for requests that need authentication but name no resource
    (the ``GET /v2/`` ping).
    """

    def authorize(self, request: Request, scope: Scope | None) -> Response | None:
        """Return ``None`` to let the request through, or the challenge/denial to send.

        Args:
            request: the request as received (headers include ``Authorization``).
            scope: what the request needs, or ``None`` for the ping.

        Returns:
            ``None`` when allowed, else the ``Response`` (401 challenge, 403 denial).
        """
        ...
