"""The registry as a pure function: ``RegistryApp.handle(Request) -> Response``.

A route table ``[(methods, pattern, handler, scope)]`` maps each request to one small
handler (``_api_pull.py``, ``_api_push.py``); each handler's docstring carries its
distribution-spec section. Before a handler runs, the auth policy is asked about the
request's :class:`~registry_sim.access.Scope`; after it, the fault rules may reshape the
response. No sockets here: ``server.py`` feeds requests in and writes responses out.

A Python exception escaping a handler is a *simulator bug*: it is recorded in
:attr:`RegistryApp.errors`, answered with a 500 carrying ``X-Registry-Sim-Bug``, and
re-raised in the test by :meth:`RegistryApp.check` (pytest-httpserver's
``check_assertions`` habit).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from registry_sim import _api_pull as pull
from registry_sim import _api_push as push
from registry_sim._api import API_VERSION_HEADER, Call, Handler, is_repository_name
from registry_sim._api_manifests import AcceptPolicy
from registry_sim.access import AuthPolicy, Scope
from registry_sim.faults import FaultSet
from registry_sim.storage import Storage
from registry_sim.wire import Headers, Request, Response
from registry_sim.wire_errors import ErrorCode, error

__all__ = ["AcceptPolicy", "RegistryApp", "Route"]

ScopeRule = Callable[[str], Scope | None]


def _pull(name: str) -> Scope:
    return Scope.pull(name)


def _push(name: str) -> Scope:
    return Scope.push(name)


def _delete(name: str) -> Scope:
    return Scope(name, frozenset({"delete"}))


def _catalog(_: str) -> Scope:
    # distribution's catalog scope: "registry:catalog:*"
    return Scope("catalog", frozenset({"*"}), "registry")


def _no_scope(_: str) -> None:
    return None


@dataclass(frozen=True)
class Route:
    """One row of the route table."""

    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler
    scope: ScopeRule


def _route(methods: str, pattern: str, handler: Handler, scope: ScopeRule) -> Route:
    return Route(frozenset(methods.split()), re.compile(pattern), handler, scope)


_NAME = r"/v2/(?P<name>.+)"
# Order matters: upload URLs are also shaped like blob URLs.
ROUTES: tuple[Route, ...] = (
    _route("GET HEAD", r"/v2/?", pull.ping, _no_scope),
    _route("GET", r"/v2/_catalog", pull.list_catalog, _catalog),
    _route("GET", _NAME + r"/tags/list", pull.list_tags, _pull),
    _route("GET HEAD", _NAME + r"/manifests/(?P<ref>[^/]+)", pull.get_manifest, _pull),
    _route("PUT", _NAME + r"/manifests/(?P<ref>[^/]+)", push.put_manifest, _push),
    _route(
        "DELETE", _NAME + r"/manifests/(?P<ref>[^/]+)", push.delete_manifest, _delete
    ),
    _route("POST", _NAME + r"/blobs/uploads/?", push.start_upload, _push),
    _route("PATCH", _NAME + r"/blobs/uploads/(?P<ref>[^/]+)", push.patch_upload, _push),
    _route("PUT", _NAME + r"/blobs/uploads/(?P<ref>[^/]+)", push.finish_upload, _push),
    _route("GET", _NAME + r"/blobs/uploads/(?P<ref>[^/]+)", push.upload_status, _push),
    _route(
        "DELETE", _NAME + r"/blobs/uploads/(?P<ref>[^/]+)", push.cancel_upload, _push
    ),
    _route("GET HEAD", _NAME + r"/blobs/(?P<ref>[^/]+)", pull.get_blob, _pull),
    _route("DELETE", _NAME + r"/blobs/(?P<ref>[^/]+)", push.delete_blob, _delete),
)


def _not_found() -> Response:
    # What distribution's router answers for a path it has no route for.
    headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
    return Response(404, headers, b"404 page not found\n")


class RegistryApp:
    """A distribution-API registry over a :class:`Storage`, without sockets.

    Args:
        storage: where repositories, manifests and blobs live.
        auth: the policy asked before every handler; ``None`` lets everything through.
        faults: fault rules applied to every response; an empty set when ``None``.
        name: a label for this registry (shown in bug reports).
        accept_policy: manifest content negotiation, see :class:`AcceptPolicy`.
        delete_enabled: whether DELETE of manifests and blobs is allowed
            (distribution answers ``UNSUPPORTED`` when it is off).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        auth: AuthPolicy | None = None,
        faults: FaultSet | None = None,
        name: str = "",
        accept_policy: AcceptPolicy = AcceptPolicy.DISTRIBUTION,
        delete_enabled: bool = True,
    ) -> None:
        self.storage = storage
        self.auth = auth
        self.faults = faults if faults is not None else FaultSet()
        self.name = name
        self.accept_policy = accept_policy
        self.delete_enabled = delete_enabled
        self._errors: list[Exception] = []
        self._errors_lock = threading.Lock()

    @property
    def errors(self) -> list[Exception]:
        """The simulator bugs recorded so far (a copy)."""
        with self._errors_lock:
            return list(self._errors)

    def check(self) -> None:
        """Re-raise the first recorded simulator bug, if any, and forget it.

        Raises:
            Exception: the exception a handler (or fault rule) raised.
        """
        with self._errors_lock:
            first = self._errors.pop(0) if self._errors else None
        if first is not None:
            raise first

    def clear_errors(self) -> None:
        """Forget recorded bugs (between tests)."""
        with self._errors_lock:
            self._errors.clear()

    def handle(self, request: Request) -> Response:
        """Answer one request: route, authorize, run the handler, apply faults.

        Args:
            request: the parsed request.

        Returns:
            The response to write; a 500 with ``X-Registry-Sim-Bug`` only when the
            simulator itself failed (see :meth:`check`).
        """
        try:
            response = self._dispatch(request)
            if API_VERSION_HEADER[0] not in response.headers:
                # distribution sets this header on every response, challenges included.
                response.headers.add(*API_VERSION_HEADER)
            return self.faults.apply(request, response)
        except Exception as exc:
            return self._bug(request, exc)

    def _bug(self, request: Request, exc: Exception) -> Response:
        exc.add_note(f"registry-sim {self.name!r}: {request.method} {request.path}")
        with self._errors_lock:
            self._errors.append(exc)
        headers = Headers(
            [
                ("X-Registry-Sim-Bug", type(exc).__name__),
                ("Content-Type", "text/plain; charset=utf-8"),
            ]
        )
        return Response(500, headers, b"registry-sim bug; see RegistryApp.check()\n")

    def _match(self, request: Request) -> tuple[Route, dict[str, str]] | Response:
        path_matched = False
        for route in ROUTES:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if request.method in route.methods:
                return route, match.groupdict()
        if path_matched:
            return error(ErrorCode.UNSUPPORTED, detail=f"method {request.method}")
        return _not_found()

    def _authorize(self, request: Request, scope: Scope | None) -> Response | None:
        if self.auth is None:
            return None
        return self.auth.authorize(request, scope)

    def _dispatch(self, request: Request) -> Response:
        matched = self._match(request)
        if isinstance(matched, Response):
            return matched
        route, params = matched
        name = params.get("name", "")
        if "name" in params and not is_repository_name(name):
            return error(ErrorCode.NAME_INVALID, detail={"name": name})
        denied = self._authorize(request, route.scope(name))
        if denied is not None:
            return denied
        call = Call(
            request=request,
            storage=self.storage,
            name=name,
            ref=params.get("ref", ""),
            authorize=lambda scope: self._authorize(request, scope),
            accept_policy=self.accept_policy,
            delete_enabled=self.delete_enabled,
        )
        return route.handler(call)
