"""Behaviour profiles: the one switchboard where the seed and containerd 1.6.20 differ.

A :class:`Profile` is a small frozen value passed into the functions that care. Every
field names the catalog behaviour it implements (``../shared/behaviors.md`` §17), so a
difference between the two profiles is one line here, never an ``if`` on a profile name
somewhere else.

Security behaviours are deliberately *not* switches: the reference is safe in every
profile (credentials bound to their endpoint, no credentials on cross-host redirects,
no foreign URLs outside http(s), unpacking confined to its root).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "CONTAINERD_16",
    "CONTAINERD_17",
    "CONTAINERD_20",
    "CONTAINERD_23",
    "PROFILES",
    "SEED",
    "Profile",
    "get_profile",
]


@dataclass(frozen=True, kw_only=True)
class Profile:
    """The behaviour switches of one runtime generation.

    Each field is ``True`` when the runtime has the behaviour described.
    """

    name: str
    #: EP-004: any loopback IP (127.0.0.0/8, ::1) defaults to http, not just the exact names.
    loopback_any_ip_is_http: bool
    #: EP-006: endpoints without ``://`` get ``default_scheme(host) + "://"`` prefixed.
    schemeless_endpoint_gets_default_scheme: bool
    #: EP-003/CFG-002: the default config carries a docker.io mirror to registry-1.docker.io.
    default_config_has_docker_io_mirror: bool
    #: HOST-005: a TLS config on a non-https endpoint fails host construction.
    tls_on_http_endpoint_is_error: bool
    #: HOST-007: mirror requests carry ``?ns=<registry host>``.
    mirror_ns_query: bool
    #: HOST-008: ``registry.headers`` are added to registry requests.
    registry_headers: bool
    #: HOST-009: plain-http loopback endpoints get ``InsecureSkipVerify`` (for redirects to https).
    loopback_http_skips_verify: bool
    #: CHAL-002: an empty quoted auth-param (``a=""``) truncates challenge parsing (seed bug).
    empty_quoted_param_truncates_challenge: bool
    #: CHAL-003/TOKEN-001: the bearer challenge's ``scope`` is optional and split on spaces.
    challenge_scope_optional: bool
    #: CHAL-008/XPORT-005: redirected requests are re-authorized by the authorizer.
    redirects_reauthorized: bool
    #: TOKEN-003: ``scope`` is omitted from the OAuth POST form when empty.
    post_omits_empty_scope: bool
    #: TOKEN-004: an OAuth POST answered 400 also falls back to GET.
    post_400_falls_back_to_get: bool
    #: TOKEN-005: an empty ``access_token`` in a POST answer is an error, not ``Bearer ``.
    empty_access_token_is_error: bool
    #: TOKEN-008: token requests send ``User-Agent: containerd/<version>``.
    token_requests_send_user_agent: bool
    #: RES-006/RES-010: the next host is tried after transport errors and statuses >= 400.
    resolve_falls_through_on_error: bool
    #: RES-005/FETCH-001: manifests by digest are also tried under ``/blobs/`` (seed fallback).
    manifest_blob_fallback: bool
    #: FETCH-002: blob fetches fall through to the next host on any error.
    fetch_falls_through_on_error: bool
    #: FETCH-004: non-http(s) foreign ``urls`` are skipped (seed: tried, failing the pull).
    foreign_urls_http_only: bool
    #: FETCH-006: an unexpected EOF mid-blob is resumed with a Range request.
    fetch_auto_resume: bool
    #: FETCH-008: short reads are reported as "failed to read expected number of bytes".
    short_read_message: bool
    #: PULL-001: linux/amd64 also accepts linux/386 and amd64 variants v2/v3.
    amd64_platform_fallbacks: bool
    #: PULL-002/PULL-003: layers are fetched by the unpacker; existing snapshots skip download.
    deferred_layer_download: bool
    #: PULL-005: the diff-ID mismatch error quotes the expected diff_id (seed: the calculated one).
    diffid_error_quotes_expected: bool
    #: PULL-006: the image record is created only after a successful unpack.
    record_after_unpack: bool
    #: PULL-010: zstd-compressed layers are supported.
    zstd_layers: bool
    #: S1-005: schema1 documents with ``layers``/``manifests`` keys are rejected.
    schema1_rejects_ambiguous: bool
    #: S1-008: synthesized schema1 configs may carry variant, os.version, os.features, ArgsEscaped.
    schema1_config_image_spec_11: bool
    #: CRI-004: re-labelling an existing record patches only the CRI label (seed replaces all).
    relabel_patches_only_cri_label: bool
    #: CRI-007: the CRI ``runtime.v1`` API is served alongside ``v1alpha2``.
    cri_v1_api: bool
    #: STORE-003: repo tags and digests are sorted.
    sorted_references: bool
    #: CFG-003: deprecated ``registry.auths`` are converted keyed by host, one credential each.
    auths_conversion_fixed: bool
    #: ERR-003: Go >= 1.14 quotes URLs in transport error messages.
    quoted_urls_in_errors: bool
    #: The User-Agent sent by the runtime (``containerd/<version>``).
    user_agent: str
    # hosts.toml mode (registry.config_path); the defaults are containerd 1.6's.
    #: CFG-004: ``registry.config_path`` (hosts.toml directories) is read at all.
    config_path_supported: bool = True
    #: CFG-007: ``registry.configs."<host>".tls`` exists (2.x dropped it; ignored there).
    configs_tls_supported: bool = True
    #: HOST-012: hosts.toml http entries with TLS settings and loopback default hosts
    #: (port not 80) try https first and fall back to http (1.7+ ``NewHTTPFallback``).
    hosts_https_first_with_fallback: bool = False
    #: HOST-013: hosts.toml entries are ordered by their ``[host."…"]`` table headers
    #: (2.x go-toml v2 parser); 1.x orders every ``host`` key by its line.
    hosts_order_from_table_headers: bool = False
    #: HOST-014: a hosts.toml without any ``[host]`` table is undecodable (1.6
    #: ``invalid `host` tree``, containerd#10027), so its ``server`` is ignored.
    hosts_toml_needs_host_table: bool = True
    # Later generations; the defaults are containerd 1.6's.
    #: CRI-007: the CRI ``runtime.v1alpha2`` API is served (2.x serves only ``v1``).
    cri_v1alpha2_api: bool = True
    #: S1-001: schema1 manifests are converted and pulled (2.x refuses them).
    schema1_pull: bool = True
    #: REF-009: the 255-character limit counts only the repository path, not the
    #: domain (1.7+ vendors github.com/distribution/reference).
    name_limit_counts_path_only: bool = False
    #: REF-002/REF-005: a first component holding an upper-case letter is a domain
    #: (1.7+); up to 1.6 it is a path component, refused as not lowercase.
    upper_case_first_component_is_domain: bool = False
    #: REF-005: the lowercase error quotes the remote name it refused (1.7+:
    #: ``repository name (library/Busybox) must be lowercase``).
    uppercase_error_quotes_remote_name: bool = False
    #: S1-008: the synthesized config's platform fields follow image-spec v1.1.0's
    #: embedded ``Platform`` order (``variant`` after ``os.features``).
    image_config_embeds_platform: bool = False
    #: TOKEN-006: a cached bearer token is fetched again once its ``expires_in``
    #: has passed (1.7+; 1.6 keeps it for the handler's life).
    token_expiry_honoured: bool = False
    #: FETCH-003: content fetches send ``Accept-Encoding: zstd;q=1.0, gzip;q=0.8,
    #: deflate;q=0.5`` (2.x), Range requests included; else Go's implicit ``gzip``.
    fetch_accepts_zstd: bool = False
    #: CHAL-007: attempts of one request in all (retries on 401/405/408/429 included).
    retry_attempts: int = 6
    #: CHAL-007: a 500, 503 or 504 from the last host tried is retried once more (2.3).
    server_errors_retried_on_last_host: bool = False
    #: PULL-001: the transfer service downloads every index entry whose platform is the
    #: host's exactly, and every entry without one; the CRI then picks among them (2.3).
    transfer_fetches_exact_platform_entries: bool = False
    #: S1-008: Go's encoding/json writes backspace and form feed as ``\b``/``\f``
    #: (Go >= 1.22 built the runtime); go1.19.8, which built 1.6.20, as ``\u0008``.
    json_short_control_escapes: bool = False


SEED = Profile(
    name="seed",
    loopback_any_ip_is_http=False,
    schemeless_endpoint_gets_default_scheme=False,
    default_config_has_docker_io_mirror=True,
    tls_on_http_endpoint_is_error=True,
    mirror_ns_query=False,
    registry_headers=False,
    loopback_http_skips_verify=False,
    empty_quoted_param_truncates_challenge=True,
    challenge_scope_optional=False,
    redirects_reauthorized=False,
    post_omits_empty_scope=False,
    post_400_falls_back_to_get=False,
    empty_access_token_is_error=False,
    token_requests_send_user_agent=False,
    resolve_falls_through_on_error=False,
    manifest_blob_fallback=True,
    fetch_falls_through_on_error=False,
    foreign_urls_http_only=False,
    fetch_auto_resume=False,
    short_read_message=False,
    amd64_platform_fallbacks=False,
    deferred_layer_download=False,
    diffid_error_quotes_expected=False,
    record_after_unpack=False,
    zstd_layers=False,
    schema1_rejects_ambiguous=False,
    schema1_config_image_spec_11=False,
    relabel_patches_only_cri_label=False,
    cri_v1_api=False,
    sorted_references=False,
    auths_conversion_fixed=False,
    quoted_urls_in_errors=False,
    # The binary built from the seed's commit sends what its vendored containerd's
    # version package says (vendor/.../containerd/version/version.go, no ldflags).
    user_agent="containerd/1.3.0+unknown",
    # cri@ab6701bd pkg/config/config.go Registry has no ConfigPath: the key is ignored.
    config_path_supported=False,
    # The graded seed is built with go1.27.3 (`python -m cri_conformance.runtimes`), whose
    # encoding/json (appendString, Go 1.22+) writes \b and \f: the real binary converts
    # the escaping schema1 vector to sha256:bbe96cb9..., not 1.6.20's eb189ab9... (S1-008).
    json_short_control_escapes=True,
)

CONTAINERD_16 = Profile(
    name="containerd-1.6",
    loopback_any_ip_is_http=True,
    schemeless_endpoint_gets_default_scheme=True,
    default_config_has_docker_io_mirror=False,
    tls_on_http_endpoint_is_error=False,
    mirror_ns_query=True,
    registry_headers=True,
    loopback_http_skips_verify=True,
    empty_quoted_param_truncates_challenge=False,
    challenge_scope_optional=True,
    redirects_reauthorized=True,
    post_omits_empty_scope=True,
    post_400_falls_back_to_get=True,
    empty_access_token_is_error=True,
    token_requests_send_user_agent=True,
    resolve_falls_through_on_error=True,
    manifest_blob_fallback=False,
    fetch_falls_through_on_error=True,
    foreign_urls_http_only=True,
    fetch_auto_resume=True,
    short_read_message=True,
    amd64_platform_fallbacks=True,
    deferred_layer_download=True,
    diffid_error_quotes_expected=True,
    record_after_unpack=True,
    zstd_layers=True,
    schema1_rejects_ambiguous=True,
    schema1_config_image_spec_11=True,
    relabel_patches_only_cri_label=True,
    cri_v1_api=True,
    sorted_references=True,
    auths_conversion_fixed=True,
    quoted_urls_in_errors=True,
    user_agent="containerd/1.6.20~ds1",
)

# Each later generation is the previous one with only the switches that differ, each
# found by running the suite against the real binary and read in its source.
CONTAINERD_17 = replace(
    CONTAINERD_16,
    name="containerd-1.7",
    user_agent="containerd/v1.7.34",
    # v1.7.34 vendor/github.com/distribution/reference/reference.go:209 checks
    # len(repo.path) > 255, the domain not counted (REF-009).
    name_limit_counts_path_only=True,
    # v1.7.34 vendor/github.com/distribution/reference/normalize.go:152-155 (v0.6.0,
    # as in 2.0.11 and 2.3.4) splitDockerDomain: "if the first element is not
    # lowercase, we assume it to be a domain-name" (REF-002, REF-005).
    upper_case_first_component_is_domain=True,
    # Same file, :67-68 ParseNormalizedNamed: "invalid reference format: repository
    # name (%s) must be lowercase" with the remote name (REF-005).
    uppercase_error_quotes_remote_name=True,
    # v1.7.34 vendors image-spec v1.1.0: config.go Image embeds Platform, so the
    # schema1 converter's json.MarshalIndent(img) puts variant last (S1-008).
    image_config_embeds_platform=True,
    # v1.7.34 remotes/docker/authorizer.go:276-281 keeps each scoped token's
    # expirationTime (getExpirationTime, :343) and fetches anew after it (TOKEN-006).
    token_expiry_honoured=True,
    # v1.7.34 remotes/docker/config/hosts.go ConfigureHosts: NewHTTPFallback (HOST-012).
    hosts_https_first_with_fallback=True,
    # v1.7.34 remotes/docker/config/hosts.go:531-534 getSortedHosts returns no hosts,
    # not v1.6.20's "invalid `host` tree", for a file without [host] (#10028, HOST-014).
    hosts_toml_needs_host_table=False,
    # Built with go1.27.3 like the seed: the escaping schema1 vector converts to the
    # seed's sha256:bbe96cb9... there too (S1-008).
    json_short_control_escapes=True,
)

CONTAINERD_20 = replace(
    CONTAINERD_17,
    name="containerd-2.0",
    user_agent="containerd/v2.0.11",
    # v2.0.11 internal/cri/config RegistryConfig has no TLS (CFG-007); hosts.go
    # getSortedHosts walks table headers with go-toml v2's parser (HOST-013).
    configs_tls_supported=False,
    hosts_order_from_table_headers=True,
    # v2.0.11 plugins/cri/cri.go:172-173 registers runtime.v1 only (CRI-007).
    cri_v1alpha2_api=False,
    # v2.0.11 core/remotes/docker/schema1/converter.go:72 ErrDisabled: the converter
    # is off unless CONTAINERD_ENABLE_DEPRECATED_PULL_SCHEMA_1_IMAGE=1; 2.3.4
    # core/transfer/local/pull.go:66 refuses schema1 outright (S1-001).
    schema1_pull=False,
    # v2.0.11 core/remotes/docker/fetcher.go:271 sets Accept-Encoding itself (FETCH-003).
    fetch_accepts_zstd=True,
)

CONTAINERD_23 = replace(
    CONTAINERD_20,
    name="containerd-2.3",
    user_agent="containerd/v2.3.4",
    # v2.3.4 core/remotes/docker/resolver.go:733 maxAttempts = 5, counted down by
    # doWithRetriesInner; 1.6-2.0 stop after len(responses) > 5, six (CHAL-007).
    retry_attempts=5,
    # v2.3.4 core/remotes/docker/resolver.go:844-852 retryRequest: 500/503/504 retried
    # when lastHost, unless the previous response had the same status (CHAL-007).
    server_errors_retried_on_last_host=True,
    # v2.3.4 internal/cri/server/images/image_pull.go:303 WithPlatforms(DefaultSpec()):
    # core/transfer/image/imagestore.go:198-207 filters with platforms.Ordered (exact
    # match) and FilterPlatforms, no LimitManifests; the CRI then picks the image with
    # platforms.Default() among what was fetched (PULL-001).
    transfer_fetches_exact_platform_entries=True,
)

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (SEED, CONTAINERD_16, CONTAINERD_17, CONTAINERD_20, CONTAINERD_23)
}


def get_profile(name: str) -> Profile:
    """Return the profile called *name* (``seed`` or ``containerd-1.6``).

    Raises:
        KeyError: with the list of known names, when *name* is not one of them.
    """
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise KeyError(f"unknown profile {name!r} (known: {known})") from None
