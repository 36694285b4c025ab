"""The embedding API: a simulated registry on loopback in a few verbs.

    with RegistrySim(tls=True) as sim:
        sim.push(Image.schema2(layers=[Layer.random(1024, seed=1)]), "library/app:1.0")
        pull_with_some_runtime(f"{sim.host_port}/library/app:1.0", ca_file=sim.ca_path)
        sim.journal.assert_request(method="GET", path="/blobs/")

One :class:`RegistrySim` is one server (one port) holding one registry; extra named
registries and token servers are added with :meth:`RegistrySim.add_host` and reached
by Host (or through :meth:`RegistrySim.proxy`, which impersonates them by name).
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from registry_sim.access import AuthPolicy
from registry_sim.app import RegistryApp
from registry_sim.faults import Fault, FaultSet
from registry_sim.journal import Journal
from registry_sim.proxy import ConnectProxy
from registry_sim.server import Handler, RegistryServer, Router
from registry_sim.storage import Storage
from registry_sim.tls import ClientCert, SimCA
from registry_sim.tokens import describe_bearer

__all__ = ["Pushable", "RegistrySim", "split_reference"]

# Names the sim's own certificate always covers, besides the bind address.
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class Pushable(Protocol):
    """What :meth:`RegistrySim.push` stores: the shape of ``images.py`` builders.

    ``blobs`` maps digest → content; ``manifests`` lists ``(media_type, bytes)``
    with children first and the root last. Digests listed in ``unverified`` are
    stored as given even though the content does not hash to them.
    """

    @property
    def blobs(self) -> dict[str, bytes | Path]: ...

    @property
    def manifests(self) -> list[tuple[str, bytes]]: ...


@dataclass
class _Hosted:
    """An extra named registry with its own storage, faults and app."""

    storage: Storage
    faults: FaultSet
    app: RegistryApp


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """Splits ``repo[:tag][@digest]`` (no registry host) into its three parts.

    Raises:
        ValueError: an empty repository name.
    """
    rest, _, digest = reference.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    if not rest:
        raise ValueError(f"no repository in {reference!r}")
    return rest, tag or None, digest or None


def _as_handler(target: Handler | RegistryApp | object) -> Handler:
    handle = getattr(target, "handle", None)
    if callable(handle):
        return handle  # type: ignore[no-any-return]
    if callable(target):
        return target
    raise TypeError(f"{type(target).__name__} is neither a handler nor has .handle")


class RegistrySim:
    """A simulated registry served on loopback (HTTP or HTTPS), with a journal.

    The port is bound at construction, so :attr:`url` is known before :meth:`start`.

    Args:
        tls: ``True`` for HTTPS with a fresh :class:`SimCA`, a ``SimCA`` to use
            (the caller keeps ownership), or ``False`` for plain HTTP.
        auth: the registry's auth policy (``auth.BasicAuth``, ``auth.TokenAuth``).
        faults: a ``FaultSet`` to use, or fault rules to start with (either way
            :meth:`reset` clears them; add more with ``sim.faults.add``).
        host: loopback address to bind (``127.0.0.1``, ``127.0.0.2``, ``::1``).
        port: the port; 0 picks a free one.
        storage_root: keep blobs there instead of a private temp directory.
        mtls: with TLS, require a client certificate issued by the CA.
        names: extra DNS names/IPs for the server certificate.
        alpn: with TLS, the ALPN protocols offered (``("h2", "http/1.1")`` makes a
            registry that would speak HTTP/2 to a client offering it; the simulator
            itself speaks HTTP/1.1 only). The journal records what was negotiated.
    """

    def __init__(
        self,
        *,
        tls: bool | SimCA = False,
        auth: AuthPolicy | None = None,
        faults: FaultSet | Iterable[Fault] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_root: Path | None = None,
        mtls: bool = False,
        names: Sequence[str] = (),
        alpn: Sequence[str] = (),
    ) -> None:
        self._alpn = tuple(alpn)
        self._owns_ca = tls is True
        self._ca: SimCA | None = SimCA() if tls is True else (tls or None)
        self._mtls = mtls
        self._leaves: dict[str, ssl.SSLContext] = {}
        self._leaves_lock = threading.Lock()
        self._ca_path: Path | None = None
        self.faults = faults if isinstance(faults, FaultSet) else FaultSet(faults or ())
        self.storage = Storage(storage_root)
        self.app = RegistryApp(self.storage, auth=auth, faults=self.faults, name="sim")
        self._journal = Journal(bearer_describer=describe_bearer)
        self.router = Router(default=self.app.handle)
        self._hosts: dict[str, _Hosted] = {}
        self._proxy: ConnectProxy | None = None
        context = None
        if self._ca is not None:
            bare = host.strip("[]")
            cert_names = list(dict.fromkeys([bare, *_LOOPBACK_NAMES, *names]))
            context = self._ca.server_context(
                cert_names, require_client_cert=mtls, alpn=self._alpn
            )
        try:
            self.server = RegistryServer(
                self.router,
                host=host,
                port=port,
                ssl_context=context,
                sni=self._sni if context is not None else None,
                record=self._journal.record_request,
            )
        except OSError:
            self._release()
            raise

    # -- where it is ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http(s)://host:port`` of the registry."""
        return self.server.url

    @property
    def host_port(self) -> str:
        """``host:port``: the registry part of image references."""
        return self.server.host_port

    @property
    def ca(self) -> SimCA | None:
        """The CA that issued the server (and proxy) certificates, if any."""
        return self._ca

    @property
    def ca_path(self) -> Path | None:
        """The CA bundle file for runtimes (``SSL_CERT_FILE``, ``ca_file``), or None."""
        if self._ca is not None and self._ca_path is None:
            self._ca_path = self._ca.write_ca()
        return self._ca_path

    @property
    def journal(self) -> Journal:
        """The journal, once responses already written are recorded in it."""
        self.server.quiesce()
        if self._proxy is not None:
            self._proxy.server.quiesce()
        return self._journal

    def url_for(self, name: str) -> str:
        """The URL of a named host on this server's port (``https://mirror.test:P``)."""
        return f"{self.server.scheme}://{name}:{self.server.port}"

    # -- lifetime ---------------------------------------------------------------------

    def start(self) -> Self:
        """Starts serving (idempotent). Returns ``self``."""
        self.server.start()
        return self

    def close(self) -> None:
        """Stops the server and proxy, removes storage and any CA this sim created."""
        if self._proxy is not None:
            self._proxy.close()
        self.server.close()
        self._release()

    def _release(self) -> None:
        self.storage.close()
        for hosted in self._hosts.values():
            hosted.storage.close()
        if self._owns_ca and self._ca is not None:
            self._ca.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def reset(self) -> None:
        """Empties storage, faults, journal and recorded bugs (between tests).

        Named hosts and the proxy stay: a runtime's configuration points at them.
        """
        self.server.quiesce()
        for storage, faults, app in self._registries():
            storage.reset()
            faults.clear()
            app.clear_errors()
        self.server.errors.clear()
        if self._proxy is not None:
            self._proxy.server.errors.clear()
        self._journal.clear()

    def check(self) -> None:
        """Re-raises the first simulator bug (a handler or server exception)."""
        self.server.quiesce()
        for _storage, _faults, app in self._registries():
            app.check()
        self.server.check()
        if self._proxy is not None:
            self._proxy.check()

    def _registries(self) -> list[tuple[Storage, FaultSet, RegistryApp]]:
        found = [(self.storage, self.faults, self.app)]
        found += [(h.storage, h.faults, h.app) for h in self._hosts.values()]
        return found

    # -- content ----------------------------------------------------------------------

    def _storage_for(self, host: str | None) -> Storage:
        if host is None:
            return self.storage
        if host not in self._hosts:
            raise KeyError(f"{host!r} is not a registry added with add_host()")
        return self._hosts[host].storage

    def push(self, image: Pushable, reference: str, *, host: str | None = None) -> str:
        """Stores an image built by ``images.py`` (blobs, then manifests, root last).

        Args:
            image: anything with ``blobs`` and ``manifests`` (see :class:`Pushable`).
            reference: ``repo:tag``, ``repo@digest`` (store the root under that
                digest as given) or ``repo`` (by digest only).
            host: a registry added with :meth:`add_host` instead of this one.

        Returns:
            The digest the root manifest is stored under.

        Raises:
            ValueError: a blob does not hash to its digest and is not listed in the
                image's ``unverified`` set (a builder bug).
        """
        storage = self._storage_for(host)
        repo, tag, digest = split_reference(reference)
        unverified: frozenset[str] = getattr(image, "unverified", frozenset())
        for blob_digest, content in image.blobs.items():
            given = blob_digest if blob_digest in unverified else None
            stored = storage.put_blob(repo, content, digest=given)
            if stored != blob_digest:
                raise ValueError(f"blob {blob_digest} hashes to {stored}")
        *children, (root_type, root) = image.manifests
        for media_type, data in children:
            storage.put_manifest(repo, _sha256(data), data, media_type)
        if digest is None and tag is None:
            digest = str(getattr(image, "digest", "")) or _sha256(root)
        stored_root = storage.put_manifest(repo, digest or str(tag), root, root_type)
        if digest is not None and tag is not None:
            storage.tag(repo, tag, stored_root)
        return stored_root

    def push_manifest(
        self,
        repo: str,
        reference: str,
        data: bytes,
        media_type: str,
        *,
        host: str | None = None,
    ) -> str:
        """Stores raw manifest bytes under a tag or digest; returns the digest."""
        return self._storage_for(host).put_manifest(repo, reference, data, media_type)

    def push_blob(
        self,
        repo: str,
        data: bytes | Path,
        *,
        digest: str | None = None,
        host: str | None = None,
    ) -> str:
        """Stores a blob (under ``digest`` unchecked, when given); returns the digest."""
        return self._storage_for(host).put_blob(repo, data, digest=digest)

    # -- more hosts -------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        target: Handler | object | None = None,
        *,
        auth: AuthPolicy | None = None,
        faults: FaultSet | Iterable[Fault] | None = None,
    ) -> RegistryApp | None:
        """Serves another name on this port and through the proxy.

        Args:
            name: ``host`` or ``host:port`` as clients send it in Host / CONNECT.
            target: a handler (``Request -> Response``) or an object with
                ``.handle`` (``TokenServer``, ``RegistryApp``); ``None`` creates a
                new empty registry with its own storage (push with ``host=name``).
            auth: the new registry's auth policy (only when ``target`` is None).
            faults: the new registry's faults (only when ``target`` is None).

        Returns:
            The new registry's ``RegistryApp`` when one was created, else None.
        """
        if target is not None:
            self.router.add(name, _as_handler(target))
            return None
        fault_set = faults if isinstance(faults, FaultSet) else FaultSet(faults or ())
        storage = Storage()
        app = RegistryApp(storage, auth=auth, faults=fault_set, name=name)
        self._hosts[name] = _Hosted(storage, fault_set, app)
        self.router.add(name, app.handle)
        return app

    def proxy(self, *, host: str = "127.0.0.1", port: int = 0) -> ConnectProxy:
        """Starts (once) and returns the CONNECT proxy impersonating named hosts.

        A runtime with ``HTTPS_PROXY=<proxy.url>`` and ``SSL_CERT_FILE=<ca_path>``
        then reaches every :meth:`add_host` name over TLS. Without ``tls=`` a CA
        is created for the proxy.
        """
        if self._proxy is None:
            if self._ca is None:
                self._ca, self._owns_ca = SimCA(), True
            self._proxy = ConnectProxy(
                self.router,
                contexts=self._leaf,
                host=host,
                port=port,
                record=self._journal.record_request,
            ).start()
        return self._proxy

    def client_cert(self, common_name: str) -> ClientCert:
        """Issues a client certificate from the sim's CA (for mTLS).

        Raises:
            RuntimeError: the sim has no CA (``tls=False`` and no proxy).
        """
        if self._ca is None:
            raise RuntimeError("this RegistrySim has no CA: pass tls=True")
        return self._ca.issue_client_cert(common_name)

    def _leaf(self, name: str) -> ssl.SSLContext:
        if self._ca is None:
            raise RuntimeError("no CA to issue a certificate for " + repr(name))
        with self._leaves_lock:
            if name not in self._leaves:
                # mTLS holds for every name: a per-name context must not relax it.
                self._leaves[name] = self._ca.server_context(
                    [name], require_client_cert=self._mtls, alpn=self._alpn
                )
            return self._leaves[name]

    def _sni(self, name: str) -> ssl.SSLContext | None:
        # A name routed here gets a certificate for it; anything else the default.
        return self._leaf(name) if self.router.named(name) is not None else None


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
