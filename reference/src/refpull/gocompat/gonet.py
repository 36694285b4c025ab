"""Go ``net`` and ``path`` helpers that endpoint and proxy decisions depend on.

Faithful ports of the few standard-library functions whose edge cases the catalog
records: ``net.SplitHostPort`` (EP-004's "too many colons" quirk), ``net.ParseIP`` and
``IP.IsLoopback`` (EP-004, XPORT-001), ``URL.Hostname``/``URL.Port`` and ``path.Join``
(HOST-001/002).
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "IP",
    "default_port",
    "hostname_port",
    "is_loopback_ip",
    "parse_ip",
    "path_join",
    "split_host_port",
    "unmap_ip",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": "80", "https": "443", "socks5": "1080"}


def default_port(scheme: str) -> str:
    """The port Go's proxy code assumes for *scheme* (``""`` if unknown)."""
    return _DEFAULT_PORTS.get(scheme, "")


def split_host_port(hostport: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``.

    Args:
        hostport: ``host:port``, ``[v6]:port`` ...

    Returns:
        ``(host, port)``; brackets are removed, the port may be empty.

    Raises:
        ValueError: with Go's reason (``missing port in address``, ``too many colons
            in address`` ...).
    """
    i = hostport.rfind(":")
    if i < 0:
        raise ValueError("missing port in address")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 == len(hostport):
            raise ValueError("missing port in address")
        if end + 1 != i:
            if hostport[end + 1] == ":":
                raise ValueError("too many colons in address")
            raise ValueError("missing port in address")
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[j:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[i + 1 :]


def parse_ip(text: str) -> IP | None:
    """Go's ``net.ParseIP``: a bare IPv4 or IPv6 literal, no zone, no brackets.

    Args:
        text: candidate literal.

    Returns:
        The address, or ``None`` where Go returns nil.
    """
    if "%" in text:  # Go's ParseIP rejects zones that Python accepts.
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback_ip(ip: IP) -> bool:
    """Go's ``IP.IsLoopback``: 127.0.0.0/8 (also IPv4-mapped) or ``::1``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def unmap_ip(ip: IP) -> IP:
    """The IPv4 form of an IPv4-mapped IPv6 address, else *ip* unchanged."""
    # Go compares IPv4-mapped IPv6 addresses as their IPv4 form (IP.Equal, IPNet.Contains).
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def hostname_port(host: str) -> tuple[str, str]:
    """Go's ``URL.Hostname()`` and ``URL.Port()`` of a URL host ``name[:port]``.

    Args:
        host: ``url.Host``, e.g. ``[::1]:5000``.

    Returns:
        ``(name, port)``; brackets removed, port ``""`` when absent.
    """
    name, port = host, ""
    colon = name.rfind(":")
    if colon >= 0 and name[colon + 1 :].isdigit() and name[colon + 1 :].isascii():
        name, port = name[:colon], name[colon + 1 :]
    elif colon >= 0 and colon == len(name) - 1:
        name = name[:colon]
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name, port


def path_join(*elems: str) -> str:
    """Go's ``path.Join``: join non-empty elements with ``/`` and ``path.Clean`` them."""
    text = "/".join(e for e in elems if e)
    if not text:
        return ""
    rooted = text.startswith("/")
    out: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."
