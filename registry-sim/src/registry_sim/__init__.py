"""registry_sim: a registry that can be anything a conformance test needs.

The public API is re-exported here; ``__all__`` is sorted and checked by a test.
"""

from __future__ import annotations

from registry_sim.access import AuthPolicy, Scope
from registry_sim.app import RegistryApp
from registry_sim.auth import BasicAuth, NoAuth, TokenAuth
from registry_sim.faults import (
    Action,
    CorruptBody,
    Custom,
    Delay,
    Drip,
    DropHeader,
    Fault,
    FaultSet,
    Match,
    Redirect,
    Reset,
    SetHeader,
    Stall,
    Status,
    Truncate,
    WrongDigestHeader,
    WrongLength,
    WrongMediaType,
    load_faults,
)
from registry_sim.images import (
    Config,
    FileSpec,
    Image,
    Index,
    Layer,
    Platform,
    RecipeError,
    Schema1,
    load_recipe,
)
from registry_sim.journal import ANY, Exchange, Journal
from registry_sim.proxy import ConnectProxy
from registry_sim.server import RegistryServer, Router
from registry_sim.sim import Pushable, RegistrySim, split_reference
from registry_sim.storage import Storage
from registry_sim.tls import ClientCert, SigningKey, SimCA
from registry_sim.token_server import TokenRequest, TokenServer
from registry_sim.tokens import Personality, describe_bearer, personalities
from registry_sim.wire import Delivery, FileBody, Headers, Request, Response
from registry_sim.wire_errors import ErrorCode, error_response

__all__ = [
    "ANY",
    "Action",
    "AuthPolicy",
    "BasicAuth",
    "ClientCert",
    "Config",
    "ConnectProxy",
    "CorruptBody",
    "Custom",
    "Delay",
    "Delivery",
    "Drip",
    "DropHeader",
    "ErrorCode",
    "Exchange",
    "Fault",
    "FaultSet",
    "FileBody",
    "FileSpec",
    "Headers",
    "Image",
    "Index",
    "Journal",
    "Layer",
    "Match",
    "NoAuth",
    "Personality",
    "Platform",
    "Pushable",
    "RecipeError",
    "Redirect",
    "RegistryApp",
    "RegistryServer",
    "RegistrySim",
    "Request",
    "Reset",
    "Response",
    "Router",
    "Schema1",
    "Scope",
    "SetHeader",
    "SigningKey",
    "SimCA",
    "Stall",
    "Status",
    "Storage",
    "TokenAuth",
    "TokenRequest",
    "TokenServer",
    "Truncate",
    "WrongDigestHeader",
    "WrongLength",
    "WrongMediaType",
    "describe_bearer",
    "error_response",
    "load_faults",
    "load_recipe",
    "personalities",
    "split_reference",
]
