"""Go's ``http.ProxyFromEnvironment`` (``x/net/http/httpproxy``, Go 1.19), XPORT-001.

The runtime's transport picks a proxy per request with this function; the reference
does the same through :func:`proxy_for`, with the environment passed in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from refpull.gocompat.gonet import (
    IP,
    default_port,
    hostname_port,
    is_loopback_ip,
    parse_ip,
    split_host_port,
    unmap_ip,
)
from refpull.gocompat.gourl import URLError
from refpull.gocompat.gourl import parse as parse_go_url

__all__ = ["proxy_for"]

_CGI_REFUSAL = (
    "refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy"
)


def _idna_ascii(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _env(environ: Mapping[str, str], *names: str) -> str:
    # x/net/http/httpproxy getEnvAny: the first non-empty value wins.
    for name in names:
        if environ.get(name):
            return environ[name]
    return ""


def _parse_proxy(value: str) -> str | None:
    # x/net/http/httpproxy parseProxy: a bogus or scheme-less value gets "http://".
    if not value:
        return None
    try:
        scheme = parse_go_url(value).scheme
    except URLError:
        scheme = None
    if scheme in ("http", "https", "socks5"):
        return value
    try:
        parse_go_url("http://" + value)
    except URLError:
        return None  # an invalid proxy setting is ignored, as in Go
    return "http://" + value


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """Which proxy Go's ``http.ProxyFromEnvironment`` uses for *url* (XPORT-001).

    ``HTTPS_PROXY``/``https_proxy`` for https, ``HTTP_PROXY``/``http_proxy`` for http
    (upper case wins when both are set and non-empty), ``NO_PROXY``/``no_proxy``
    exclusions (``*``, IPs, CIDRs, domain suffixes with optional ``.``/``*.`` prefix and
    ``:port``). ``localhost`` and loopback IPs are never proxied.

    Args:
        url: the request URL.
        environ: the process environment (passed in; never read here).

    Returns:
        The proxy URL, or ``None`` for a direct connection.

    Raises:
        ValueError: Go's CGI refusal -- ``REQUEST_METHOD`` is set and an http URL would
            use ``HTTP_PROXY``.
    """
    try:
        parsed = parse_go_url(url)
    except URLError:
        return None
    if parsed.scheme == "https":
        proxy = _parse_proxy(_env(environ, "HTTPS_PROXY", "https_proxy"))
    elif parsed.scheme == "http":
        proxy = _parse_proxy(_env(environ, "HTTP_PROXY", "http_proxy"))
        if proxy is not None and environ.get("REQUEST_METHOD"):
            raise ValueError(_CGI_REFUSAL)
    else:
        proxy = None
    if proxy is None:
        return None
    name, port = hostname_port(parsed.host)
    port = port or default_port(parsed.scheme)
    if not _use_proxy(_idna_ascii(name), port, _env(environ, "NO_PROXY", "no_proxy")):
        return None
    return proxy


def _use_proxy(host: str, port: str, no_proxy: str) -> bool:
    # x/net/http/httpproxy useProxy; the exact-case "localhost" test comes first.
    if host == "localhost":
        return False
    ip = parse_ip(host)
    if ip is not None and is_loopback_ip(ip):
        return False
    host = host.strip().lower()
    return not any(
        _no_proxy_matches(entry, host, port, ip) for entry in no_proxy.split(",")
    )


def _no_proxy_matches(entry: str, host: str, port: str, ip: IP | None) -> bool:
    entry = entry.strip().lower()
    if not entry:
        return False
    if entry == "*":
        return True
    if "/" in entry:
        return _cidr_matches(entry, ip)
    try:
        phost, pport = split_host_port(entry)
        if not phost:
            return False  # malformed (":80"), ignored by Go
    except ValueError:
        phost, pport = entry, ""
    if phost.startswith("[") and phost.endswith("]"):
        phost = phost[1:-1]
    if (pip := parse_ip(phost)) is not None:
        return ip is not None and _same_ip(pip, ip) and pport in ("", port)
    if phost.startswith("*."):
        phost = phost[1:]
    match_host = not phost.startswith(".")
    if match_host:
        phost = "." + phost
    phost = _idna_ascii(phost)
    if host.endswith(phost) or (match_host and host == phost[1:]):
        return pport in ("", port)
    return False


def _same_ip(a: IP, b: IP) -> bool:
    return unmap_ip(a) == unmap_ip(b)


def _cidr_matches(entry: str, ip: IP | None) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False  # not a CIDR: as a domain it could never match a host name
    if ip is None:
        return False
    ip = unmap_ip(ip)
    return ip.version == network.version and ip in network
