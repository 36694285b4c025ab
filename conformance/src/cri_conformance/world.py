"""The session's registries: one simulator on loopback and named hosts behind its proxy.

A runtime is configured once per session (containerd reads its registry config at
start-up), so every registry a scenario may need exists from the start under its own
name: scenarios stay isolated by name and repository, not by reconfiguring the runtime.

* ``world.sim`` — plain HTTP on ``127.0.0.1:<port>``: loopback, so http by default
  (EP-004) and never proxied (XPORT-001).
* Named hosts (``registry-1.docker.io``, ``mirror-a.test``, ``token.test``, …) —
  served over TLS through the CONNECT proxy with certificates from the run's CA;
  the runtime gets ``HTTPS_PROXY`` and ``SSL_CERT_FILE`` (behaviors.md H-PROXY).
* ``world.mtls`` — a second simulator requiring client certificates (TLS-00x).
"""

from __future__ import annotations

import base64
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from cri_conformance.targets.base import (
    AuthSpec,
    HostSettings,
    RegistrySetup,
    TargetEnvironment,
)
from registry_sim.app import RegistryApp
from registry_sim.auth import AnyBasicAuth, BasicAuth, TokenAuth
from registry_sim.faults import Fault, FaultSet
from registry_sim.journal import Exchange, Journal
from registry_sim.sim import RegistrySim
from registry_sim.tls import ClientCert
from registry_sim.token_server import TokenServer

__all__ = ["HEADER_NAME", "HEADER_VALUE", "USERS", "World"]

#: Users every authenticating registry and token server of the world knows.
USERS = {"alice": "alice-secret", "bob": "bob-secret", "cfg-user": "cfg-secret"}

#: The operator header every registry request carries where supported (HOST-008).
HEADER_NAME, HEADER_VALUE = "X-Cri-Conformance", "operator-header"

#: Named registries without auth, reached through the proxy (https).
PLAIN_HOSTS = (
    "registry-1.docker.io",
    "mirrored.test",
    "mirror-a.test",
    "mirror-b.test",
    "upstream.test",
    "redirect.test",
    "blobstore.test",
)

#: Token personalities, each on its own registry name ``<personality>.token.test``.
TOKEN_PERSONALITIES = (
    "standard",
    "post-404",
    "post-405",
    "post-401",
    "post-400",
    "access-token-only",
    "token-only",
    "empty-access-token",
    "no-expires",
)


def _closed_port() -> int:
    """A loopback port that was free a moment ago (nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _TokenHost:
    registry: str
    token_server: TokenServer


class World:
    """Every registry of a session, and the runtime setup that points at them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sim = RegistrySim()
        self.proxy = self.sim.proxy()
        ca_path = self.sim.ca_path
        assert ca_path is not None
        self.ca_path: Path = ca_path
        ca = self.sim.ca
        assert ca is not None
        self.apps: dict[str, RegistryApp] = {}
        for name in PLAIN_HOSTS:
            self._add(name)
        # Basic-auth registries: CRI credentials, configured credentials, and the
        # mirror/upstream pair of the credential-leak scenario (AUTH-009).
        for name in (
            "basic.test",
            "cfg-auth.test",
            "creds-mirror.test",
            "creds-mirrored.test",
            "auths-a.test",  # CFG-003: the deprecated auths pair
            "auths-b.test",
        ):
            self._add(name, auth=BasicAuth(users=USERS))
        self.tokens: dict[str, _TokenHost] = {}
        for personality in TOKEN_PERSONALITIES:
            auth_host = f"auth.{personality}.token.test"
            server = TokenServer(
                signing=ca.signing_key(),
                users=USERS,
                personality=personality,
                service=f"{personality}.token.test",
            )
            self.sim.add_host(auth_host, server)
            registry = f"{personality}.token.test"
            self._add(
                registry, auth=TokenAuth(server, realm=f"https://{auth_host}/token")
            )
            self.tokens[personality] = _TokenHost(registry, server)
        # AUTH-010: a registry whose realm is plain http on another host; TOKEN-009:
        # one whose realm is a relative URL.
        plain_realm = TokenServer(
            signing=ca.signing_key(), users=USERS, service="plainrealm.test"
        )
        self.sim.add_host("plain-auth.test", plain_realm)
        self._add(
            "plainrealm.test",
            auth=TokenAuth(plain_realm, realm="http://plain-auth.test/token"),
        )
        self.tokens["plain-realm"] = _TokenHost("plainrealm.test", plain_realm)
        # TOKEN-006 (F-14): tokens that expire one second after they are issued.
        short = TokenServer(
            signing=ca.signing_key(),
            users=USERS,
            service="shortlived.test",
            expires_in=1,
        )
        self.sim.add_host("auth.shortlived.test", short)
        self._add(
            "shortlived.test",
            auth=TokenAuth(short, realm="https://auth.shortlived.test/token"),
        )
        self.tokens["short-lived"] = _TokenHost("shortlived.test", short)
        # CHAL-005: a token server that grants nothing to anonymous clients.
        denied = TokenServer(
            signing=ca.signing_key(), users=USERS, service="denied.test", anonymous={}
        )
        self.sim.add_host("auth.denied.test", denied)
        self._add(
            "denied.test",
            auth=TokenAuth(denied, realm="https://auth.denied.test/token"),
        )
        self.tokens["denied"] = _TokenHost("denied.test", denied)
        relative = TokenServer(
            signing=ca.signing_key(), users=USERS, service="relrealm.test"
        )
        self._add("relrealm.test", auth=TokenAuth(relative, realm="/token"))
        self.tokens["relative-realm"] = _TokenHost("relrealm.test", relative)
        # mTLS: a second server that requires a client certificate from the CA.
        self.mtls = RegistrySim(tls=ca, mtls=True)
        self.mtls.start()
        # A second plain-http server, for endpoint-path and TLS-on-http cases.
        self.extra_http = RegistrySim()
        self.extra_http.start()
        self.tls_http = RegistrySim()  # plain http, but with a TLS config (HOST-005)
        self.tls_http.start()
        # TLS servers whose certificates come from a CA the runtime does not trust:
        # one configured with insecure_skip_verify, one left to default verification.
        self.untrusted_skip = RegistrySim(tls=True)
        self.untrusted_skip.start()
        self.untrusted = RegistrySim(tls=True)
        self.untrusted.start()
        # XPORT-003: a trusted https registry that offers h2 first in ALPN.
        self.h2 = RegistrySim(tls=ca, alpn=("h2", "http/1.1"))
        self.h2.start()
        self.closed_port = _closed_port()
        # Replays of the AuthConfig vectors: loopback http, Basic, any credential.
        self.any_basic = RegistrySim(auth=AnyBasicAuth())
        self.any_basic.start()
        # TLS-005: a CA file that starts as junk and is fixed between two pulls.
        self.reload_ca = RegistrySim(tls=True)
        self.reload_ca.start()
        self.reload_ca_file = workdir / "reload-ca.pem"
        self.reload_ca_file.write_text("not a certificate\n")
        self.client_cert: ClientCert = self.sim.client_cert("cri-conformance-client")
        self.sim.start()

    def _add(self, name: str, *, auth: BasicAuth | TokenAuth | None = None) -> None:
        app = self.sim.add_host(name, auth=auth)
        assert app is not None
        self.apps[name] = app

    def faults(self, host: str | None = None) -> FaultSet:
        """The fault rules of one registry (the loopback one by default)."""
        return self.sim.faults if host is None else self.apps[host].faults

    def add_fault(self, fault: Fault, *, host: str | None = None) -> None:
        self.faults(host).add(fault)

    # -- what the runtime is given ---------------------------------------------------
    def environment(self) -> TargetEnvironment:
        return TargetEnvironment(
            http_proxy=self.proxy.url, ca_bundle=str(self.ca_path), no_proxy=""
        )

    def setup(self) -> RegistrySetup:
        """The registry section every target of the session runs with."""
        cfg_auth = base64.b64encode(b"cfg-user:cfg-secret").decode()
        return RegistrySetup(
            mirrors={
                # EP-001/EP-002: mirrors in order, the default endpoint appended last.
                "mirrored.test": ["https://mirror-a.test", "https://mirror-b.test"],
                # AUTH-009: a credential configured for the mirror only.
                "creds-mirrored.test": ["https://creds-mirror.test"],
                # HOST-004/TLS: the mTLS simulator as an explicit https mirror.
                "mtls.test": [self.mtls.url],
                # EP-003: the seed's default mirror for Docker Hub (CFG-002).
                "docker.io": ["https://registry-1.docker.io"],
                # EP-006: a mirror endpoint written without a scheme.
                "schemeless.test": [self.extra_http.host_port],
                # HOST-002: an endpoint path of "/" is used verbatim (no /v2).
                "slashpath.test": [f"{self.extra_http.url}/"],
                # HOST-005: a TLS config for the host of a plain-http endpoint.
                "tlshttp.test": [self.tls_http.url],
                # TLS-004/TLS-006: untrusted certificates, skipped and verified.
                "skipverify.test": [self.untrusted_skip.url],
                "verify.test": [self.untrusted.url],
                # XPORT-003: an https mirror offering h2 in ALPN.
                "h2.test": [self.h2.url],
                # EP-007/TLS-003: a good mirror followed by one whose CA file is missing.
                "eager.test": ["https://mirror-a.test", "https://broken-ca.test"],
                # RES-006: a first mirror nobody listens on, then a working one.
                "deadmirrored.test": [
                    f"http://127.0.0.1:{self.closed_port}",
                    "https://mirror-b.test",
                ],
                # TLS-005: a mirror whose CA file is replaced between pulls.
                "reloadca.test": [self.reload_ca.url],
                # TLS-001: a client certificate without its key.
                "certonly.test": ["https://certonly-mirror.test"],
            },
            configs={
                "creds-mirror.test": HostSettings(
                    auth=AuthSpec(username="alice", password="alice-secret")
                ),
                "cfg-auth.test": HostSettings(auth=AuthSpec(auth=cfg_auth)),
                self.mtls.host_port: HostSettings(
                    ca_file=str(self.ca_path),
                    cert_file=str(self.client_cert.cert_path),
                    key_file=str(self.client_cert.key_path),
                ),
                self.tls_http.host_port: HostSettings(ca_file=str(self.ca_path)),
                self.untrusted_skip.host_port: HostSettings(insecure_skip_verify=True),
                "broken-ca.test": HostSettings(
                    ca_file=str(self.workdir / "missing-ca.pem")
                ),
                "certonly-mirror.test": HostSettings(
                    cert_file=str(self.client_cert.cert_path)
                ),
                self.reload_ca.host_port: HostSettings(
                    ca_file=str(self.reload_ca_file)
                ),
            },
            # HOST-008: an operator header for every registry request (1.6).
            headers={HEADER_NAME: [HEADER_VALUE]},
            # Plain-http loopback registries: a runtime speaking https by default
            # (CRI-O) must be told; containerd uses http for loopback anyway (EP-004).
            insecure_hosts=(
                self.sim.host_port,
                self.any_basic.host_port,
                self.extra_http.host_port,
                self.tls_http.host_port,
                f"127.0.0.1:{self.closed_port}",
            ),
            # CFG-003: deprecated auths, keyed by URL as documented.
            auths={
                "https://auths-a.test": AuthSpec(
                    username="alice", password="alice-secret"
                ),
                "https://auths-b.test": AuthSpec(username="bob", password="bob-secret"),
            },
        )

    # -- per test --------------------------------------------------------------------
    @property
    def journal(self) -> Journal:
        return self.sim.journal

    def exchanges(self, *, repo: str | None = None) -> list[Exchange]:
        """Everything the registries saw, optionally only for one repository."""
        found = [ex for sim in self._sims() for ex in sim.journal.exchanges]
        if repo is None:
            return sorted(found, key=lambda ex: ex.time)
        marker = f"/{repo}/"
        return sorted(
            (ex for ex in found if marker in ex.path or repo in ex.query),
            key=lambda ex: ex.time,
        )

    def _sims(self) -> list[RegistrySim]:
        return [
            self.sim,
            self.mtls,
            self.extra_http,
            self.tls_http,
            self.untrusted_skip,
            self.untrusted,
            self.h2,
            self.reload_ca,
            self.any_basic,
        ]

    def reset(self) -> None:
        for sim in self._sims():
            sim.reset()
        for host in self.tokens.values():
            host.token_server.clear()

    def check(self) -> None:
        """Re-raise simulator bugs in the test that triggered them."""
        for sim in self._sims():
            sim.check()

    def close(self) -> None:
        """Stop every registry; remove their CA and storage, and the work directory."""
        for sim in reversed(self._sims()):
            sim.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
