"""refpull: the reference CRI image puller, the executable specification of the suite.

The public API is re-exported here; ``__all__`` is sorted and checked by a test.
The modules live in sub-packages in pipeline order (gocompat, settings, content,
registry, unpack, pull, cri, cli); reference/README.md draws the layout.
"""

from __future__ import annotations

from refpull.content.manifests import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_image_config,
    parse_manifest,
    select_platform,
)
from refpull.content.schema1 import ConvertedImage, Schema1Converter, strip_signature
from refpull.content.store import ContentStore, Ingest
from refpull.cri.images import (
    MANAGED_LABEL_KEY,
    MANAGED_LABEL_VALUE,
    ImageStore,
    InterleavingStore,
)
from refpull.cri.index import CRIImage, IndexedImage, to_cri_image
from refpull.cri.records import (
    create_image_reference,
    repo_digest_and_tag,
    update_image,
)
from refpull.cri.service import ImageService, ServiceError, grpc_code
from refpull.digest import Digest, DigestVerifier, sha256_digest
from refpull.errors import (
    AlreadyExists,
    AuthError,
    ConfigError,
    DiffIDMismatch,
    DigestMismatch,
    InvalidArgument,
    InvalidAuth,
    InvalidReference,
    ManifestTooLarge,
    NoMatchingPlatform,
    NotFound,
    NotFoundInStore,
    PullError,
    RefpullError,
    RegistryError,
    ResolveError,
    Schema1Error,
    SizeMismatch,
    StoreError,
    TLSError,
    TokenError,
    TransportError,
    Unauthorized,
    UnpackError,
    UnsafePath,
    UnsupportedMediaType,
    VerificationError,
)
from refpull.gocompat.imageref import (
    ImageRef,
    RepoLocation,
    parse_docker_ref,
    split_registry_host,
)
from refpull.profiles import CONTAINERD_16, PROFILES, SEED, Profile, get_profile
from refpull.pull.puller import ProgressEvent, Puller, PullResult
from refpull.registry.authflow import RegistryAuth
from refpull.registry.challenge import Challenge, parse_www_authenticate
from refpull.registry.transport import TransportSettings, make_client, proxy_for
from refpull.settings.config import (
    HostConfig,
    RegistryConfig,
    TLSConfig,
    default_config,
    load_config,
    parse_config,
)
from refpull.settings.credentials import AuthConfig, Credentials, parse_auth
from refpull.settings.explain import EndpointExplanation, Explanation, explain
from refpull.settings.hosts import (
    CredentialsSource,
    RegistryHost,
    credentials_for,
    default_host,
    default_scheme,
    registry_endpoints,
    registry_hosts,
)
from refpull.settings.tlsconfig import ssl_context
from refpull.unpack.snapshots import SnapshotStore, apply_layers, chain_ids

__all__ = [
    "CONTAINERD_16",
    "MANAGED_LABEL_KEY",
    "MANAGED_LABEL_VALUE",
    "PROFILES",
    "SEED",
    "AlreadyExists",
    "AuthConfig",
    "AuthError",
    "CRIImage",
    "Challenge",
    "ConfigError",
    "ContentStore",
    "ConvertedImage",
    "Credentials",
    "CredentialsSource",
    "Descriptor",
    "DiffIDMismatch",
    "Digest",
    "DigestMismatch",
    "DigestVerifier",
    "EndpointExplanation",
    "Explanation",
    "HostConfig",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "ImageRef",
    "ImageService",
    "ImageStore",
    "IndexedImage",
    "Ingest",
    "InterleavingStore",
    "InvalidArgument",
    "InvalidAuth",
    "InvalidReference",
    "ManifestTooLarge",
    "NoMatchingPlatform",
    "NotFound",
    "NotFoundInStore",
    "Platform",
    "Profile",
    "ProgressEvent",
    "PullError",
    "PullResult",
    "Puller",
    "RefpullError",
    "RegistryAuth",
    "RegistryConfig",
    "RegistryError",
    "RegistryHost",
    "RepoLocation",
    "ResolveError",
    "Schema1Converter",
    "Schema1Error",
    "ServiceError",
    "SizeMismatch",
    "SnapshotStore",
    "StoreError",
    "TLSConfig",
    "TLSError",
    "TokenError",
    "TransportError",
    "TransportSettings",
    "Unauthorized",
    "UnpackError",
    "UnsafePath",
    "UnsupportedMediaType",
    "VerificationError",
    "apply_layers",
    "chain_ids",
    "create_image_reference",
    "credentials_for",
    "default_config",
    "default_host",
    "default_scheme",
    "explain",
    "get_profile",
    "grpc_code",
    "load_config",
    "make_client",
    "parse_auth",
    "parse_config",
    "parse_docker_ref",
    "parse_image_config",
    "parse_manifest",
    "parse_www_authenticate",
    "proxy_for",
    "registry_endpoints",
    "registry_hosts",
    "repo_digest_and_tag",
    "select_platform",
    "sha256_digest",
    "split_registry_host",
    "ssl_context",
    "strip_signature",
    "to_cri_image",
    "update_image",
]
