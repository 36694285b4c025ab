"""Media types the puller knows, and the ``Accept`` header it sends when resolving.

Sources: containerd ``images/mediatypes.go`` and ``remotes/docker/resolver.go`` (the Accept
list, RES-001), the OCI image-spec ``media-types.md`` (v1.0.1 for the seed, v1.1.0-rc2 for 1.6).
"""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_UNCOMPRESSED",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_SCHEMA1_MANIFEST",
    "INDEX_TYPES",
    "LAYER_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "OCTET_STREAM",
    "RESOLVE_ACCEPT",
    "is_index",
    "is_layer",
    "is_manifest",
    "is_schema1",
]

DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)

OCTET_STREAM = "application/octet-stream"

MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
LAYER_TYPES = frozenset(
    {
        DOCKER_LAYER,
        DOCKER_LAYER_UNCOMPRESSED,
        DOCKER_FOREIGN_LAYER,
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    }
)

# behaviors.md RES-001: the resolver asks for these types, in this order, then "*/*".
RESOLVE_ACCEPT = ", ".join(
    [
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        OCI_INDEX,
        "*/*",
    ]
)


def is_schema1(media_type: str) -> bool:
    """True for the docker schema1 signed manifest type (S1-001, the seed's ``isSchema1``)."""
    return media_type == DOCKER_SCHEMA1_MANIFEST


def is_manifest(media_type: str) -> bool:
    """True for single-platform image manifests (docker schema2 or OCI)."""
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    """True for manifest lists and OCI indexes."""
    return media_type in INDEX_TYPES


def is_layer(media_type: str) -> bool:
    """True for the layer media types containerd unpacks."""
    return media_type in LAYER_TYPES
