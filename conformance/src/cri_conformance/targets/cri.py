"""A target behind any CRI endpoint, spoken to over gRPC (``runtime.v1`` or ``v1alpha2``).

The CRI messages come from refpull's minimal proto (``refpull.cri.api``), whose field
numbers are the upstream CRI API's, so this client talks to containerd, CRI-O or
``refpull serve`` alike. Every call carries a deadline: a runtime without a progress
timeout (behaviors.md XPORT-002) must not hang the suite.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import grpc

from cri_conformance.targets.base import (
    Capability,
    ImageInfo,
    TargetCrashed,
    TargetError,
)
from refpull.cri.api import (
    api_v1_pb2,
    api_v1_pb2_grpc,
    api_v1alpha2_pb2,
    api_v1alpha2_pb2_grpc,
)

__all__ = ["CRIClient", "CRITarget", "detect_api"]

_APIS: dict[str, tuple[ModuleType, ModuleType]] = {
    "v1": (api_v1_pb2, api_v1_pb2_grpc),
    "v1alpha2": (api_v1alpha2_pb2, api_v1alpha2_pb2_grpc),
}

_AUTH_FIELDS = (
    "username",
    "password",
    "auth",
    "server_address",
    "identity_token",
    "registry_token",
)


def _channel_target(endpoint: str) -> str:
    if endpoint.startswith("unix://"):
        return endpoint
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    return endpoint


def detect_api(channel: grpc.Channel, *, timeout: float = 10.0) -> str:
    """Return ``v1`` when the runtime serves it, else ``v1alpha2`` (CRI-007)."""
    for api in ("v1", "v1alpha2"):
        pb2, pb2_grpc = _APIS[api]
        try:
            pb2_grpc.RuntimeServiceStub(channel).Version(
                pb2.VersionRequest(version=api), timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                continue
            raise
        return api
    raise TargetError(
        "UNIMPLEMENTED", "the endpoint serves neither CRI v1 nor v1alpha2"
    )


class CRIClient:
    """Thin typed wrapper over the ImageService of one CRI endpoint."""

    def __init__(
        self,
        endpoint: str,
        *,
        api: str = "auto",
        timeout: float = 120.0,
        on_unavailable: Callable[[], str] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._on_unavailable = on_unavailable
        self._channel = grpc.insecure_channel(_channel_target(endpoint))
        self.api = detect_api(self._channel) if api == "auto" else api
        if self.api not in _APIS:
            raise ValueError(f"unknown CRI API {api!r} (v1, v1alpha2 or auto)")
        self._pb2, pb2_grpc = _APIS[self.api]
        self._images = pb2_grpc.ImageServiceStub(self._channel)
        self._runtime = pb2_grpc.RuntimeServiceStub(self._channel)

    def _call(
        self, method: Callable[..., Any], request: Any, timeout: float | None = None
    ) -> Any:
        try:
            return method(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                tail = self._on_unavailable() if self._on_unavailable else ""
                raise TargetCrashed(
                    f"CRI endpoint {self.endpoint} unavailable: {exc.details()}",
                    log_tail=tail,
                ) from exc
            raise TargetError(code.name, exc.details() or "") from exc

    def version(self) -> Any:
        return self._call(self._runtime.Version, self._pb2.VersionRequest())

    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """PullImage with the client's deadline, or *timeout* seconds when given."""
        request = self._pb2.PullImageRequest(image=self._pb2.ImageSpec(image=image))
        if auth is not None:
            unknown = set(auth) - set(_AUTH_FIELDS)
            if unknown:
                raise ValueError(f"unknown AuthConfig fields: {sorted(unknown)}")
            request.auth.CopyFrom(self._pb2.AuthConfig(**dict(auth)))
        response = self._call(self._images.PullImage, request, timeout)
        return str(response.image_ref)

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        request = self._pb2.ImageStatusRequest(
            image=self._pb2.ImageSpec(image=image), verbose=verbose
        )
        response = self._call(self._images.ImageStatus, request)
        if not response.HasField("image"):
            return None
        return _image_info(response.image, dict(response.info))

    def list(self) -> list[ImageInfo]:
        response = self._call(self._images.ListImages, self._pb2.ListImagesRequest())
        return [_image_info(image, {}) for image in response.images]

    def remove(self, image: str) -> None:
        request = self._pb2.RemoveImageRequest(image=self._pb2.ImageSpec(image=image))
        self._call(self._images.RemoveImage, request)

    def close(self) -> None:
        self._channel.close()


def _image_info(image: Any, info: dict[str, str]) -> ImageInfo:
    uid = image.uid.value if image.HasField("uid") else None
    return ImageInfo(
        id=image.id,
        repo_tags=tuple(image.repo_tags),
        repo_digests=tuple(image.repo_digests),
        size=int(image.size),
        uid=uid,
        username=image.username,
        info=info,
    )


class CRITarget:
    """A runtime someone else started: the suite talks to it, and configures it only
    through the user's hook (``--cri-config-hook``)."""

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        endpoint: str,
        *,
        profile: str,
        api: str = "auto",
        config_hook: Callable[[], None] | None = None,
    ) -> None:
        self.name = "cri"
        self.profile = profile
        if config_hook is not None:
            config_hook()
            self.capabilities = frozenset(
                {Capability.CONFIGURE_REGISTRIES, Capability.PROXY_ENVIRONMENT}
            )
        self._client = CRIClient(endpoint, api=api)

    @property
    def client(self) -> CRIClient:
        return self._client

    def pull(
        self,
        image: str,
        auth: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        return self._client.pull(image, auth, timeout=timeout)

    def status(self, image: str, *, verbose: bool = False) -> ImageInfo | None:
        return self._client.status(image, verbose=verbose)

    def list(self) -> list[ImageInfo]:
        return self._client.list()

    def remove(self, image: str) -> None:
        self._client.remove(image)

    def close(self) -> None:
        self._client.close()
