"""Preflight: can a target be used at all? Its credentials are present (or an Entra ID token can be had) and its
endpoint answers a cheap call (the model list: no tokens spent).

The harness checks every target this way before a run's first request, so a missing key is one clear error in
well under a second instead of a matrix of retried failures; ``workbench doctor`` shows the same checks. One
code path for both, so they never disagree.

Keyless Entra ID is checked without ever starting azure-identity's credential chain when no Azure sign-in is
present: the check says what ``DefaultAzureCredential`` would try, and what to set. With a token provider
injected (tests, custom credentials) the provider is asked for a token.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import openai

from ..config import read_api_key
from ..errors import ConfigError
from ..secrets import redact
from .provider import Provider

DEFAULT_TIMEOUT_S = 5.0

# What DefaultAzureCredential tries, and the environment each source needs.
_AZURE_SOURCES = (
    ("environment (service principal)", ("AZURE_CLIENT_ID", "AZURE_TENANT_ID")),
    ("workload identity", ("AZURE_FEDERATED_TOKEN_FILE",)),
    ("managed identity", ("IDENTITY_ENDPOINT", "MSI_ENDPOINT")),
)


@dataclass
class TargetCheck:
    """The outcome of checking one profile: ``ok`` True (usable), False (cannot work), None (not checked)."""

    profile: str
    ok: bool | None
    detail: str
    stage: str = "endpoint"  # settings | credentials | endpoint | local

    def error(self, label: str | None = None) -> str:
        who = f"Target {label!r} (profile {self.profile!r})" if label and label != self.profile \
            else f"Profile {self.profile!r}"
        detail = self.detail
        if detail.startswith(f"Profile {self.profile!r} "):  # config's own message already names it
            detail = detail[len(f"Profile {self.profile!r} "):]
        return f"{who} cannot be used: {detail}"


def azure_sign_in_sources() -> list[str]:
    """The Azure sign-ins this machine has, as DefaultAzureCredential would find them (no network, no tokens)."""
    found = [name for name, names in _AZURE_SOURCES if any(os.environ.get(n) for n in names)]
    config_dir = Path(os.environ.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")
    if shutil.which("az") and any(config_dir.glob("msal_token_cache.*")):
        found.append("Azure CLI (az login)")
    if shutil.which("azd") and (Path.home() / ".azd").is_dir():
        found.append("Azure Developer CLI (azd auth login)")
    return found


def _would_try(profile: str) -> str:
    return (f"keyless Entra ID: DefaultAzureCredential would try environment variables (AZURE_CLIENT_ID, "
            f"AZURE_TENANT_ID, AZURE_CLIENT_SECRET), workload identity, managed identity, then `az login` / "
            f"`azd auth login` - and none is set up on this machine. Sign in with `az login`, or use a key: set "
            f"AZURE_OPENAI_API_KEY (or `api_key_env` under [profiles.{profile}]).")


def check_credentials(provider: Provider, *, sign_in: bool = True) -> TargetCheck:
    """Credentials only (no request to the endpoint): a key, an Entra ID token, or none needed.

    ``sign_in=False`` reports a keyless profile without asking azure-identity for a token (``doctor --offline``).
    """
    prof = provider.profile
    name = prof.name
    if prof.backend == "local":
        return TargetCheck(name, True, "embedded model (no credentials needed)", "local")
    try:
        if prof.auth == "key":
            read_api_key(prof)
        provider.client  # noqa: B018 - builds the SDK client: endpoint, api-version and key settings are checked
    except ConfigError as e:
        return TargetCheck(name, False, str(e), "settings" if prof.auth != "key" or "API key" not in str(e)
                           else "credentials")
    try:
        if prof.auth == "key":
            return TargetCheck(name, True, "API key present", "credentials")
        if prof.auth == "none":
            return TargetCheck(name, True, "no credentials needed", "credentials")
        if provider.default_credential:
            sources = azure_sign_in_sources()
            if not sources:
                return TargetCheck(name, False, _would_try(name), "credentials")
            if not sign_in:
                return TargetCheck(name, None, f"keyless Entra ID via {', '.join(sources)} (not tried)", "credentials")
        provider.token()
        return TargetCheck(name, True, "Entra ID token obtained", "credentials")
    except ConfigError as e:
        return TargetCheck(name, False, str(e), "credentials")
    except Exception as e:  # azure-identity raises its own types; the message says what it tried
        return TargetCheck(name, False, redact(
            f"could not get an Entra ID token ({type(e).__name__}: {e}). Sign in with `az login` (or a managed "
            f"identity), or use a key: set AZURE_OPENAI_API_KEY."), "credentials")


def _address(provider: Provider) -> str:
    ident = provider.identity
    return str(ident.get("endpoint") or ident.get("base_url") or ident.get("backend"))


def _interpret(provider: Provider, outcome: object, timeout: float) -> TargetCheck:
    """A models-list answer or error -> a check. Any HTTP answer but a refusal of the credentials means the
    endpoint is there (some compatible servers have no model list: a 404 is fine)."""
    name, where = provider.profile.name, _address(provider)
    if not isinstance(outcome, BaseException):
        names = [m.id for m in getattr(outcome, "data", [])][:5]
        return TargetCheck(name, True, f"answers at {where}; models: {', '.join(names) or '(none listed)'}")
    e = outcome
    if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return TargetCheck(name, False, redact(
            f"{where} refused the credentials (HTTP {e.status_code}): {e.message}. Check the key (or the Entra ID "
            f"role assignment) for profile {name!r}."))
    if isinstance(e, openai.APIStatusError):
        return TargetCheck(name, True, f"answers at {where} (model list: HTTP {e.status_code})")
    if isinstance(e, openai.APITimeoutError):
        return TargetCheck(name, False, f"{where} did not answer within {timeout:g} s. Check the endpoint / base_url "
                                        f"of profile {name!r} and the network.")
    if isinstance(e, openai.APIConnectionError):
        cause = e.__cause__ or e.__context__
        return TargetCheck(name, False, redact(
            f"cannot connect to {where}" + (f" ({cause})" if cause else "") + f". Check the endpoint / base_url of "
            f"profile {name!r} (workbench doctor) and that the server is running."))
    if isinstance(e, ConfigError):
        return TargetCheck(name, False, str(e), "credentials")
    return TargetCheck(name, False, redact(f"{type(e).__name__}: {e}"))


def check_target(provider: Provider, *, timeout: float = DEFAULT_TIMEOUT_S, network: bool = True) -> TargetCheck:
    """Credentials, then (``network``) one cheap call to the endpoint. Synchronous: for ``workbench doctor``."""
    cred = check_credentials(provider, sign_in=network)
    if not cred.ok or cred.stage == "local" or not network:
        return cred
    try:
        outcome: object = provider.client.with_options(timeout=timeout, max_retries=0).models.list()
    except Exception as e:
        outcome = e
    return _interpret(provider, outcome, timeout)


async def apreflight(provider: Provider, *, timeout: float = DEFAULT_TIMEOUT_S) -> TargetCheck:
    """:func:`check_target` on the running event loop (the harness's preflight)."""
    cred = check_credentials(provider)
    if not cred.ok or cred.stage == "local":
        return cred
    try:
        outcome: object = await provider.async_client.with_options(timeout=timeout, max_retries=0).models.list()
    except Exception as e:
        outcome = e
    return _interpret(provider, outcome, timeout)
