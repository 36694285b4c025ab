"""The Go structs whose JSON encoding decides digests, for both image-spec generations.

The seed vendors image-spec v1.0.1; Debian's containerd 1.6.20 builds against image-spec
1.1.0-rc2 (behaviors.md §0 and S1-008), which adds ``variant``, ``os.version``,
``os.features`` to ``Image``, ``ArgsEscaped`` to ``ImageConfig``, ``data`` to
``Descriptor`` and ``mediaType``/``subject`` to ``Manifest``. Field order below is the Go
struct order, which is the JSON key order of ``json.Marshal``.
"""

from __future__ import annotations

from functools import cache

from refpull.gocompat.gojson import Field, Kind

__all__ = [
    "DESCRIPTOR_LIST",
    "INDEX",
    "PROTECTED_BLOCK",
    "SCHEMA1_MANIFEST",
    "SIGNATURE",
    "V1_HISTORY",
    "descriptor",
    "image",
    "manifest",
]

STRING = Kind("string", "string")
DIGEST = Kind("string", "digest.Digest")
BOOL = Kind("bool", "bool")
INT = Kind("int", "int")
INT64 = Kind("int", "int64")
TIME = Kind("time", "time.Time")
BYTES = Kind("bytes", "[]uint8")
RAW = Kind("raw", "json.RawMessage")
EMPTY = Kind("emptystruct", "struct {}")


def _ptr(k: Kind) -> Kind:
    # Go reports type errors of pointer fields with the pointee's type name.
    return Kind("ptr", k.go, elem=k)


def _slice(k: Kind) -> Kind:
    return Kind("slice", "[]" + k.go, elem=k)


def _map(k: Kind) -> Kind:
    return Kind("map", "map[string]" + k.go, elem=k)


def _struct(go: str, *fields: Field) -> Kind:
    return Kind("struct", go, fields=fields, struct_name=go.rpartition(".")[2])


STRINGS = _slice(STRING)
STRING_MAP = _map(STRING)

PLATFORM = _struct(
    "v1.Platform",
    Field("architecture", STRING),
    Field("os", STRING),
    Field("os.version", STRING, omitempty=True),
    Field("os.features", STRINGS, omitempty=True),
    Field("variant", STRING, omitempty=True),
)


@cache
def descriptor(spec11: bool) -> Kind:
    """``v1.Descriptor`` of image-spec 1.1.0-rc2 (*spec11*) or v1.0.1."""
    fields = [
        Field("mediaType", STRING, omitempty=True),
        Field("digest", DIGEST),
        Field("size", INT64),
        Field("urls", STRINGS, omitempty=True),
        Field("annotations", STRING_MAP, omitempty=True),
    ]
    if spec11:
        fields.append(Field("data", BYTES, omitempty=True))
    fields.append(Field("platform", _ptr(PLATFORM), omitempty=True))
    return _struct("v1.Descriptor", *fields)


DESCRIPTOR_LIST = {flag: _slice(descriptor(flag)) for flag in (False, True)}


@cache
def manifest(spec11: bool) -> Kind:
    """``v1.Manifest`` (with the embedded ``specs.Versioned``)."""
    desc = descriptor(spec11)
    fields = [Field("schemaVersion", INT)]
    if spec11:
        fields.append(Field("mediaType", STRING, omitempty=True))
    fields += [Field("config", desc), Field("layers", DESCRIPTOR_LIST[spec11])]
    if spec11:
        fields.append(Field("subject", _ptr(desc), omitempty=True))
    fields.append(Field("annotations", STRING_MAP, omitempty=True))
    return _struct("v1.Manifest", *fields)


INDEX = _struct(
    "v1.Index",
    Field("schemaVersion", INT),
    Field("mediaType", STRING, omitempty=True),
    Field("manifests", DESCRIPTOR_LIST[True]),
    Field("annotations", STRING_MAP, omitempty=True),
)

ROOTFS = _struct("v1.RootFS", Field("type", STRING), Field("diff_ids", _slice(DIGEST)))

HISTORY = _struct(
    "v1.History",
    Field("created", _ptr(TIME), omitempty=True),
    Field("created_by", STRING, omitempty=True),
    Field("author", STRING, omitempty=True),
    Field("comment", STRING, omitempty=True),
    Field("empty_layer", BOOL, omitempty=True),
)


@cache
def image(spec11: bool, *, embedded_platform: bool = False) -> Kind:
    """``v1.Image`` with its ``ImageConfig`` (behaviors.md S1-008 field order).

    *embedded_platform*: image-spec v1.1.0 (containerd 1.7+) embeds ``Platform`` in
    ``Image``, so its fields follow in Platform's order (variant after os.features).
    """
    config = [
        Field("User", STRING, omitempty=True),
        Field("ExposedPorts", _map(EMPTY), omitempty=True),
        Field("Env", STRINGS, omitempty=True),
        Field("Entrypoint", STRINGS, omitempty=True),
        Field("Cmd", STRINGS, omitempty=True),
        Field("Volumes", _map(EMPTY), omitempty=True),
        Field("WorkingDir", STRING, omitempty=True),
        Field("Labels", STRING_MAP, omitempty=True),
        Field("StopSignal", STRING, omitempty=True),
    ]
    if spec11:
        config.append(Field("ArgsEscaped", BOOL, omitempty=True))
    fields = [
        Field("created", _ptr(TIME), omitempty=True),
        Field("author", STRING, omitempty=True),
    ]
    if embedded_platform:
        fields += PLATFORM.fields
    else:
        fields.append(Field("architecture", STRING))
    if spec11 and not embedded_platform:
        fields.append(Field("variant", STRING, omitempty=True))
    if not embedded_platform:
        fields.append(Field("os", STRING))
    if spec11 and not embedded_platform:
        fields += [
            Field("os.version", STRING, omitempty=True),
            Field("os.features", STRINGS, omitempty=True),
        ]
    fields += [
        Field("config", _struct("v1.ImageConfig", *config), omitempty=True),
        Field("rootfs", ROOTFS),
        Field("history", _slice(HISTORY), omitempty=True),
    ]
    return _struct("v1.Image", *fields)


# containerd remotes/docker/schema1/converter.go private structs.
_CONTAINER_CONFIG = _struct(
    'struct { Cmd []string "json:\\"Cmd,omitempty\\"" }',
    Field("Cmd", STRINGS, omitempty=True),
)
V1_HISTORY = _struct(
    "schema1.v1History",
    Field("author", STRING, omitempty=True),
    Field("created", TIME),
    Field("comment", STRING, omitempty=True),
    Field("throwaway", _ptr(BOOL), omitempty=True),
    Field("Size", _ptr(INT), omitempty=True),
    Field("container_config", _CONTAINER_CONFIG, omitempty=True),
)
SCHEMA1_MANIFEST = _struct(
    "schema1.manifest",
    Field("fsLayers", _slice(_struct("schema1.fsLayer", Field("blobSum", DIGEST)))),
    Field(
        "history", _slice(_struct("schema1.history", Field("v1Compatibility", STRING)))
    ),
    Field("layers", RAW, omitempty=True),
    Field("manifests", RAW, omitempty=True),
)
SIGNATURE = _struct(
    "schema1.signature",
    Field(
        "signatures",
        _slice(_struct("schema1.jsParsedSignature", Field("protected", STRING))),
    ),
)
PROTECTED_BLOCK = _struct(
    "schema1.protectedBlock",
    Field("formatLength", INT),
    Field("formatTail", STRING),
)
