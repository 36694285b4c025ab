"""An HTTP(S) proxy on loopback that impersonates named registries.

A runtime started with ``HTTPS_PROXY=http://127.0.0.1:<port>`` asks this proxy to
``CONNECT registry-1.docker.io:443``. Go's ``http.ProxyFromEnvironment`` never
proxies loopback hosts, so this is how a test observes requests for non-loopback
names (behaviors.md H-PROXY, XPORT-001). The proxy records the CONNECT, answers
200, terminates TLS with a certificate for that name issued by the run's CA, and
serves the tunnelled requests through the simulator's :class:`Router`.
Absolute-form ``GET http://host/...`` requests are served the same way, without TLS.

Nothing is ever resolved through DNS or forwarded off the machine: a name without
a route is answered with 502 and recorded.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from registry_sim._connection import Tunnel
from registry_sim._http1 import plain_response
from registry_sim.server import ExchangeSink, RegistryServer, Router, split_host_port
from registry_sim.wire import Request, Response

__all__ = ["ConnectProxy"]

#: Marks 502 answers so tests and journals can tell them from a registry's own 502.
_REFUSED_FAULT = "proxy-unknown-host"


class ConnectProxy:
    """A recording CONNECT proxy serving named hosts from a :class:`Router`.

    Args:
        router: the routes; only *named* routes are served (never the default).
        contexts: ``name -> SSLContext`` giving a server context whose certificate
            covers ``name`` (e.g. ``SimCA.server_context([name])``); contexts are
            cached per name. ``None``: CONNECT is refused with 502.
        host: the loopback address to listen on.
        port: the port; 0 picks a free one.
        record: told about every exchange, CONNECTs included (``proxied_via`` set).
    """

    def __init__(
        self,
        router: Router,
        *,
        contexts: Callable[[str], ssl.SSLContext] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: ExchangeSink | None = None,
    ) -> None:
        self.router = router
        self._contexts = contexts
        self._cache: dict[str, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self.server = RegistryServer(
            router, host=host, port=port, record=record, proxy=self
        )

    @property
    def url(self) -> str:
        """The proxy URL for ``HTTPS_PROXY``/``HTTP_PROXY`` (``http://127.0.0.1:P``)."""
        return self.server.url

    @property
    def host_port(self) -> str:
        """``host:port`` the proxy listens on."""
        return self.server.host_port

    def environment(self) -> dict[str, str]:
        """Proxy variables for a runtime's environment (both spellings).

        ``NO_PROXY`` is cleared so that no inherited exclusion bypasses the proxy
        for a simulated name; loopback is never proxied by Go anyway (XPORT-001).
        """
        return {
            "HTTPS_PROXY": self.url,
            "https_proxy": self.url,
            "HTTP_PROXY": self.url,
            "http_proxy": self.url,
            "NO_PROXY": "",
            "no_proxy": "",
        }

    def start(self) -> Self:
        """Starts accepting connections. Returns ``self``."""
        self.server.start()
        return self

    def close(self) -> None:
        """Stops the proxy and joins its threads."""
        self.server.close()

    def check(self) -> None:
        """Re-raises the first simulator bug seen by the proxy, if any."""
        self.server.check()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _context(self, name: str) -> ssl.SSLContext | None:
        if self._contexts is None:
            return None
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._contexts(name)
            return self._cache[name]

    def open_tunnel(self, target: str) -> Tunnel | Response:
        """Answers ``CONNECT target``: a TLS tunnel for a routed name, else 502.

        Args:
            target: the authority-form target, ``host:port`` (RFC 9110 9.3.6).

        Returns:
            The :class:`Tunnel` to open, or the refusal to send.
        """
        host, port = split_host_port(target)
        if port is None or not port.isdigit():
            return plain_response(400, f"CONNECT needs host:port, got {target!r}\n")
        if self.router.named(target) is None:
            return _refuse(target)
        context = self._context(host.strip("[]"))
        if context is None:
            return _refuse(target, "this proxy has no CA to impersonate it")
        # Requests in the tunnel carry the name as a Host header would: no :443.
        visible = host if port == "443" else target
        return Tunnel(host=visible, target=target, ssl_context=context)

    def unknown_host(self, request: Request) -> Response:
        """Answers an absolute-form request for a name without a route (502)."""
        return _refuse(request.host)


def _refuse(name: str, why: str = "no simulated registry has that name") -> Response:
    response = plain_response(
        502,
        f"registry-sim proxy: refusing {name!r}: {why}; "
        "nothing is forwarded off this machine\n",
    )
    response.fault = _REFUSED_FAULT
    return response
