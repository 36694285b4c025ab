"""The reference's CRI endpoint: ImageService and RuntimeService.Version over gRPC.

``runtime.v1alpha2`` is always served; ``runtime.v1`` only where the profile has it
(behaviors.md CRI-007): the seed answers ``UNIMPLEMENTED`` for v1, as a v1alpha2-only
runtime does. Until the :class:`~refpull.cri.service.ImageService` is ready every image RPC
fails with ``server is not initialized yet`` (CRI-006).

Errors become gRPC statuses through ``ServiceError.grpc_code`` (ERR-001). ERR-002:
containerd's ``errdefs.ToGRPC`` calls ``status.Errorf(code, err.Error())``, so the text
of a *classified* error is a format string and ``%3A`` comes out as ``%!A(MISSING)``.
That is a functional bug present in both runtimes (behaviors.md §17 "unchanged"), not a
security weakness, so both profiles reproduce it; ``UNKNOWN`` errors are untouched.

Robustness (not containerd's behaviour, which runs every RPC on its own goroutine): a
PullImage whose RPC is cancelled, or whose deadline passes, stops its pull (budget.py);
at most ``max_pulls`` PullImage calls run at once and the thread pool has
:data:`RESERVED_WORKERS` more, so Version, ListImages, ImageStatus and RemoveImage
always find a worker while pulls stall (a PullImage over the limit is answered
RESOURCE_EXHAUSTED at once). The socket is created mode 0660, whatever the umask, and a
socket a live server answers on is never taken over.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from refpull._version import package_version
from refpull.budget import Cancel, TransferLimits
from refpull.cri.api import (
    api_v1_pb2,
    api_v1_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
)
from refpull.cri.service import ImageService, ServiceError
from refpull.errors import RefpullError
from refpull.limits import Limits
from refpull.profiles import Profile
from refpull.settings.config import RegistryConfig
from refpull.settings.credentials import AuthConfig

__all__ = ["RESERVED_WORKERS", "CRIServer", "SocketInUse", "go_errorf", "serve"]

#: Workers kept free of PullImage calls for every other RPC.
RESERVED_WORKERS = 8
#: The socket's mode: owner and group (the kubelet's) only, never the umask's choice.
SOCKET_MODE = 0o660

_NOT_READY = (
    "server is not initialized yet"  # cri instrumented_service.go checkInitialized
)
_FLAGS = "+-# 0"


def go_errorf(text: str) -> str:
    """Go ``fmt.Sprintf(text)`` with no arguments (behaviors.md ERR-002).

    Every verb lacks its operand: ``%3A`` → ``%!A(MISSING)``, ``%s`` →
    ``%!s(MISSING)``, ``%%`` → ``%``, a trailing ``%`` → ``%!(NOVERB)``, ``*`` as width
    or precision → ``%!(BADWIDTH)`` / ``%!(BADPREC)``.

    Args:
        text: the message used as a format.

    Returns:
        What Go prints.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c != "%":
            out.append(c)
            continue
        while i < n and text[i] in _FLAGS:
            i += 1
        if i < n and text[i] == "*":
            out.append("%!(BADWIDTH)")
            i += 1
        while i < n and text[i].isdigit():
            i += 1
        if i < n and text[i] == ".":
            i += 1
            if i < n and text[i] == "*":
                out.append("%!(BADPREC)")
                i += 1
            while i < n and text[i].isdigit():
                i += 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = text[i]
        i += 1
        out.append("%" if verb == "%" else f"%!{verb}(MISSING)")
    return "".join(out)


class SocketInUse(RefpullError):
    """Another server answers on the socket path."""


def _claim_socket(path: Path) -> None:
    """Remove a stale socket file; refuse one a live server answers on."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        pass  # nobody listens: a stale file from a killed server
    else:
        raise SocketInUse(
            f"{path} is in use by a running server; stop it or choose another --listen"
        )
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _rpc_cancel(context: grpc.ServicerContext) -> Cancel:
    """A :class:`Cancel` that fires when the RPC ends (cancelled, expired, stopped)."""
    cancel = Cancel()
    remaining = context.time_remaining()
    deadline = None if remaining is None else time.monotonic() + remaining

    def on_end() -> None:
        expired = deadline is not None and time.monotonic() >= deadline - 0.05
        cancel.cancel("context deadline exceeded" if expired else "context canceled")

    if not context.add_callback(on_end):
        on_end()  # the RPC has already ended
    return cancel


def _status(exc: ServiceError) -> tuple[grpc.StatusCode, str]:
    code = grpc.StatusCode[exc.grpc_code]
    message = str(exc)
    if code is not grpc.StatusCode.UNKNOWN:
        message = go_errorf(message)  # behaviors.md ERR-002, both profiles
    return code, message


class _Holder:
    """The service once initialized; RPCs before that fail (CRI-006)."""

    def __init__(self) -> None:
        self.service: ImageService | None = None

    def get(self, context: grpc.ServicerContext) -> ImageService:
        if self.service is None:
            context.abort(grpc.StatusCode.UNKNOWN, _NOT_READY)
        assert self.service is not None
        return self.service


class _ImageServicer:
    """One API version's ImageService, over the shared :class:`ImageService`."""

    def __init__(
        self, pb2: ModuleType, holder: _Holder, pulls: threading.BoundedSemaphore
    ) -> None:
        self.pb2 = pb2
        self.holder = holder
        self.pulls = pulls

    def _image(self, image: Any) -> Any:
        message = self.pb2.Image(
            id=image.id,
            repo_tags=list(image.repo_tags),
            repo_digests=list(image.repo_digests),
            size=image.size,
            username=image.username,
        )
        if image.uid is not None:
            message.uid.value = image.uid
        return message

    def _call(self, context: grpc.ServicerContext, fn: Any, *args: Any) -> Any:
        service = self.holder.get(context)
        try:
            return fn(service, *args)
        except ServiceError as exc:
            code, message = _status(exc)
            context.abort(code, message)

    def PullImage(self, request: Any, context: grpc.ServicerContext) -> Any:
        auth = None
        if request.HasField("auth"):
            a = request.auth
            auth = AuthConfig(
                username=a.username,
                password=a.password,
                auth=a.auth,
                server_address=a.server_address,
                identity_token=a.identity_token,
                registry_token=a.registry_token,
            )
        if not self.pulls.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "too many image pulls in progress (--max-concurrent-pulls); retry later",
            )
        try:
            ref = self._call(
                context,
                ImageService.pull_image,
                request.image.image,
                auth,
                _rpc_cancel(context),
            )
        finally:
            self.pulls.release()
        return self.pb2.PullImageResponse(image_ref=ref)

    def ImageStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        image, info = self._call(
            context, ImageService.image_status, request.image.image, request.verbose
        )
        response = self.pb2.ImageStatusResponse(info=info)
        if image is not None:
            response.image.CopyFrom(self._image(image))
        return response

    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:
        images = self._call(context, ImageService.list_images, None)
        return self.pb2.ListImagesResponse(images=[self._image(i) for i in images])

    def RemoveImage(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._call(context, ImageService.remove_image, request.image.image)
        return self.pb2.RemoveImageResponse()

    def ImageFsInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        usage = self._call(context, ImageService.image_fs_info)
        fs = self.pb2.FilesystemUsage(timestamp=usage.timestamp_ns)
        fs.fs_id.mountpoint = usage.mountpoint
        fs.used_bytes.value = usage.used_bytes
        fs.inodes_used.value = usage.inodes_used
        return self.pb2.ImageFsInfoResponse(image_filesystems=[fs])


class _RuntimeServicer:
    def __init__(self, pb2: ModuleType, api: str, profile: Profile) -> None:
        self.pb2 = pb2
        self.api = api
        self.profile = profile

    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:
        # cri service.go Version answers kubelet API version "0.1.0". Deviation: the
        # runtime is named for what it is, refpull, with the profile it models as the
        # version's build metadata (0.1.0+containerd-1.6), not as containerd.
        return self.pb2.VersionResponse(
            version="0.1.0",
            runtime_name="refpull",
            runtime_version=f"{package_version()}+{self.profile.name}",
            runtime_api_version=self.api,
        )


class CRIServer:
    """A gRPC server on a unix socket, serving the profile's CRI API versions."""

    def __init__(self, socket_path: Path, profile: Profile, *, max_pulls: int = 64):
        """Bind the socket (the service is attached later with :meth:`attach`).

        Args:
            socket_path: the unix socket to create (a stale file is replaced).
            profile: ``cri_v1_api`` decides whether ``runtime.v1`` is served.
            max_pulls: PullImage calls served at once; the pool has
                :data:`RESERVED_WORKERS` more threads for the other RPCs.

        Raises:
            SocketInUse: a live server answers on *socket_path*.
        """
        self.socket_path = Path(socket_path)
        self._holder = _Holder()
        pulls = threading.BoundedSemaphore(max(1, max_pulls))
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=max(1, max_pulls) + RESERVED_WORKERS)
        )
        apis: list[tuple[str, ModuleType, ModuleType]] = []
        if profile.cri_v1alpha2_api:  # CRI-007 Δ2.0
            apis.append(("v1alpha2", api_v1alpha2_pb2, api_v1alpha2_pb2_grpc))
        if profile.cri_v1_api:
            apis.append(("v1", api_v1_pb2, api_v1_pb2_grpc))  # CRI-007 Δ1.6
        for api, pb2, pb2_grpc in apis:
            pb2_grpc.add_ImageServiceServicer_to_server(
                _ImageServicer(pb2, self._holder, pulls), self._server
            )
            pb2_grpc.add_RuntimeServiceServicer_to_server(
                _RuntimeServicer(pb2, api, profile), self._server
            )
        _claim_socket(self.socket_path)
        # grpc binds with the process umask; a umask of 0 would leave the socket
        # world-writable, so bind under a tight umask and set the mode explicitly.
        old = os.umask(0o177)
        try:
            self._server.add_insecure_port(f"unix://{self.socket_path}")
        finally:
            os.umask(old)
        os.chmod(self.socket_path, SOCKET_MODE)
        self._stopped = threading.Event()

    def start(self) -> CRIServer:
        """Start answering RPCs (image RPCs fail until :meth:`attach`)."""
        self._server.start()
        return self

    def attach(self, service: ImageService) -> None:
        """Make *service* answer the image RPCs."""
        self._holder.service = service

    @property
    def service(self) -> ImageService | None:
        """The attached service, if any."""
        return self._holder.service

    def stop(self, grace: float | None = 2.0) -> None:
        """Stop the server, stop running pulls, close the service, remove the socket.

        RPCs still running after *grace* are cancelled, which stops their pulls; the
        service then waits for them to unwind so no ingest or record is half done.
        """
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stop(grace).wait()
        if self._holder.service is not None:
            self._holder.service.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)


def serve(
    socket_path: Path,
    *,
    root: Path,
    config: RegistryConfig,
    profile: Profile,
    environ: Mapping[str, str] | None = None,
    limits: TransferLimits | None = None,
    content_limits: Limits | None = None,
    max_pulls: int = 64,
) -> CRIServer:
    """Start a CRI endpoint on *socket_path* serving an ImageService on *root*.

    The socket answers at once; image RPCs fail with ``server is not initialized
    yet`` (CRI-006) until start-up recovery (ingest clean-up, index rebuild, garbage
    collection) has finished, which this function waits for.

    Args:
        socket_path: the unix socket path.
        root: the state directory.
        config: registry configuration.
        profile: the runtime generation.
        environ: proxy variables for pulls.
        limits: overall deadline and minimum rate of every pull.
        content_limits: sizes, depths and counts a registry may make a pull cost.
        max_pulls: PullImage calls served at once.

    Returns:
        The running :class:`CRIServer`; call :meth:`CRIServer.stop` to end it.
    """
    server = CRIServer(socket_path, profile, max_pulls=max_pulls).start()
    try:
        server.attach(
            ImageService(
                root,
                config,
                profile,
                environ=environ,
                limits=limits,
                content_limits=content_limits,
            )
        )
    except BaseException:
        server.stop(grace=None)
        raise
    return server
