"""The one resolver: which provider, model, base URL, key and account a call uses, and why.

Every front end — :class:`~qwq_magic.Client`, ``%%qwq``, ``%qwq use/params``, the panels,
``compare``, ``map`` — gets its choice from :func:`resolve` (or a client from
:func:`client_for`); nothing else reads ``QWQ_*`` or key variables. Precedence, highest first:

1. explicit arguments (``Client("deepinfra", model=…)``, ``%%qwq -p … -m …``, ``ChatPanel(provider=…)``);
2. the session's choice (``%qwq use``, ``qm.session.use``, ``c.QwqMagics.*``);
3. the environment: ``QWQ_PROVIDER``; ``QWQ_MODEL`` and ``QWQ_BASE_URL`` apply to the provider
   ``QWQ_PROVIDER`` names (to any provider while it is unset); ``QWQ_API_KEY`` is the generic
   server's key and goes to a hosted provider only when ``QWQ_PROVIDER`` names that provider,
   so a local server's key never travels to a hosted service; then each provider's own
   variables (``DEEPINFRA_TOKEN``…);
4. with no provider named anywhere: the first hosted provider whose key is set, then a generic
   server if ``QWQ_BASE_URL``/``QWQ_API_KEY`` is set, then a local server found on a loopback
   port (Ollama 11434, LM Studio 1234, llama.cpp 8080, vLLM 8000).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, Secret

if TYPE_CHECKING:
    from .client import Client
    from .providers import Preset

__all__ = ["LOCAL_PORTS", "Choice", "client_for", "probe_local", "resolve"]

ENV_PROVIDER, ENV_MODEL, ENV_BASE_URL, ENV_API_KEY = (
    "QWQ_PROVIDER", "QWQ_MODEL", "QWQ_BASE_URL", "QWQ_API_KEY")

#: loopback ports probed for a local OpenAI-compatible server, and who usually listens there
LOCAL_PORTS: tuple[tuple[int, str], ...] = (
    (11434, "Ollama"), (1234, "LM Studio"), (8080, "llama.cpp"), (8000, "vLLM"))

HOW_TO_CONFIGURE = """No provider is configured and no local server answered.
Choose one:
  %qwq use deepinfra            with DEEPINFRA_TOKEN set        (models: Qwen/QwQ-32B, Qwen/QwQ-32B-Preview)
  %qwq use aimlapi              with AIMLAPI_KEY set            (models: Qwen/QwQ-32B, alibaba/qwen3-32b)
  %qwq use cloudflare           with CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID set
  %qwq use openai --base-url http://localhost:11434/v1 --model qwq     (Ollama, vLLM, llama.cpp, LM Studio…)
Or set QWQ_PROVIDER / QWQ_BASE_URL / QWQ_MODEL / QWQ_API_KEY in the environment.
From Python: qm.Client("deepinfra"), or qm.Client("openai", base_url=…, model=…).
To try it offline: python -m qwq_magic.testing   (a local test server), then
  %qwq use openai --base-url http://127.0.0.1:8765/vllm/v1 --model qwq"""


@dataclass(frozen=True)
class Choice:
    """One resolved choice: everything a client needs, and where each part came from."""

    preset: Preset
    model: str
    base_url: str
    api_key: Secret | None = field(default=None, repr=False)
    account_id: str | None = None
    #: ``{"provider"|"model"|"base_url"|"api_key"|"account_id": source}``: ``"argument"``,
    #: ``"session"``, an environment variable's name, ``"local server"``, ``"default"``
    sources: Mapping[str, str] = field(default_factory=dict)
    #: a local server found by the probe: its usual name ("Ollama"), else None
    found: str | None = None

    @property
    def provider(self) -> str:
        return self.preset.name

    @property
    def label(self) -> str:
        """``provider · model · base URL``, as the panels and ``%qwq use`` show it."""
        return f"{self.provider} · {self.model} · {self.base_url}"

    def describe(self) -> str:
        """Each part of the choice and its source (never the key itself)."""
        key = "set" if self.api_key else "none"
        parts = [("provider", self.provider), ("model", self.model),
                 ("base_url", self.base_url), ("api_key", key)]
        if self.preset.account_env:
            parts.append(("account_id", self.account_id or "none"))
        return "\n".join(f"{k:<10} {v}  ({self.sources.get(k, 'default')})" for k, v in parts)


def _env(env: Mapping[str, str], name: str) -> str | None:
    v = env.get(name)
    return v.strip() if v and v.strip() else None


def _session_choice(session: Any) -> tuple[str | None, str | None, str | None, dict[str, Any]]:
    if session is None:
        return None, None, None, {}
    return (session.provider, session.model, session.base_url,
            dict(getattr(session, "client_kwargs", {}) or {}))


def resolve(
    provider: str | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | Secret | None = None,
    account_id: str | None = None,
    session: Any = None,
    env: Mapping[str, str] | None = None,
    probe: bool | None = None,
    ports: Sequence[int] | None = None,
) -> Choice:
    """Turn explicit arguments, the session's choice, the environment and (when nothing names
    a provider) a local-server probe into one :class:`Choice`. Raises
    :class:`~qwq_magic.ConfigurationError` saying how to configure one when nothing is found.

    ``probe``/``ports`` default to the session's ``autodetect``/``local_ports`` (on, the usual
    ports, without a session).
    """
    from .providers import PRESETS, get_preset

    for arg, v in (("provider", provider), ("model", model), ("base_url", base_url),
                   ("account_id", account_id)):
        if v is not None and not isinstance(v, str):
            raise ConfigurationError(f"{arg}= takes a string, not {type(v).__name__} {v!r:.40}.")
    if api_key is not None and not isinstance(api_key, str | Secret):
        raise ConfigurationError(f"api_key= takes the key as a string, not "
                                 f"{type(api_key).__name__}.")
    env = os.environ if env is None else env
    s_provider, s_model, s_url, s_kw = _session_choice(session)
    if probe is None:
        probe = getattr(session, "autodetect", True)
    if ports is None:
        ports = getattr(session, "local_ports", None) or [p for p, _ in LOCAL_PORTS]
    src: dict[str, str] = {}
    env_provider = _env(env, ENV_PROVIDER)
    found: tuple[str, str, str | None] | None = None

    # -- which provider ------------------------------------------------------------------------
    name: str | None
    if provider:
        name, src["provider"] = provider, "argument"
    elif s_provider:
        name, src["provider"] = s_provider, "session"
    elif env_provider:
        name, src["provider"] = env_provider, ENV_PROVIDER
    elif base_url or s_url:
        name, src["provider"] = "openai", "argument" if base_url else "session"
    else:
        name = None
        for p in PRESETS.values():
            var = next((v for v in p.key_env if _env(env, v)), None) if p.hosted else None
            if var:
                name, src["provider"] = p.name, f"{var} is set"
                break
        if name is None and (_env(env, ENV_BASE_URL) or _env(env, ENV_API_KEY)):
            var = ENV_BASE_URL if _env(env, ENV_BASE_URL) else ENV_API_KEY
            name, src["provider"] = "openai", f"{var} is set"
        if name is None and probe:
            found = probe_local(ports)
            if found is not None:
                name, src["provider"] = "openai", "local server"
        if name is None:
            raise ConfigurationError(HOW_TO_CONFIGURE)
    preset = get_preset(name)

    # the session's model/URL/key belong to the session's provider; the environment's
    # QWQ_MODEL/QWQ_BASE_URL to the provider QWQ_PROVIDER names (any, while it is unset)
    in_session = session is not None and (s_provider is None or s_provider.lower() == preset.name)
    env_applies = env_provider is None or env_provider.lower() == preset.name
    env_named = env_provider is not None and env_provider.lower() == preset.name

    def pick(field_: str, arg: Any, sess: Any, env_var: str | None, env_ok: bool,
             fallback: Any, fallback_src: str = "default") -> Any:
        if arg:
            src[field_] = "argument"
            return arg
        if in_session and sess:
            src[field_] = "session"
            return sess
        if env_var and env_ok and (v := _env(env, env_var)):
            src[field_] = env_var
            return v
        if fallback:
            src[field_] = fallback_src
        return fallback

    f_url, f_model = (found[0], found[2]) if found else (None, None)
    model_ = pick("model", model, s_model, ENV_MODEL, env_applies,
                  f_model or preset.default_model, "local server" if f_model else "default")
    url = pick("base_url", base_url, s_url, ENV_BASE_URL, env_applies,
               f_url or preset.base_url, "local server" if f_url else "default")
    url = _check_url(str(url))

    # -- the key -------------------------------------------------------------------------------
    key: Any = pick("api_key", api_key, s_kw.get("api_key"), None, False, None)
    if not key:
        own = [v for v in preset.key_env if v != ENV_API_KEY]
        if env_named or ENV_API_KEY in preset.key_env:
            own = [ENV_API_KEY, *own]
        for var in own:
            if v := _env(env, var):
                key, src["api_key"] = v, var
                break
    if isinstance(key, Secret):
        _check_key(key.get())
    secret = key if isinstance(key, Secret) else (Secret(_check_key(str(key))) if key else None)

    acct = pick("account_id", account_id, s_kw.get("account_id"), preset.account_env,
                preset.account_env is not None, None)
    return Choice(preset, str(model_), url, secret, acct, src,
                  found=found[1] if found else None)


def _check_url(url: str) -> str:
    import httpx

    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must start with http:// or https://; got {url!r}. "
            "Example: http://localhost:11434/v1")
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise ConfigurationError(f"base_url {url!r} is not a valid URL ({e}). "
                                 "Example: http://localhost:11434/v1") from None
    if not host:
        raise ConfigurationError(f"base_url {url!r} has no host. Example: http://localhost:11434/v1")
    return url.rstrip("/")


def _check_key(key: str) -> str:
    """A key must fit in an HTTP header: refuse others before anything is sent."""
    key = key.strip()
    try:
        key.encode("ascii")
    except UnicodeEncodeError:
        raise ConfigurationError(
            "The API key contains characters that cannot be sent in an HTTP header (non-ASCII): "
            "it was probably pasted with a stray character; copy it again.") from None
    if any(c in key for c in "\r\n\0"):
        raise ConfigurationError("The API key contains a line break; copy it again.")
    return key


def probe_local(ports: Sequence[int], timeout: float = 0.3) -> tuple[str, str, str | None] | None:
    """The first loopback port answering ``GET /v1/models``: ``(base_url, name, first model)``."""
    import httpx

    names = dict(LOCAL_PORTS)
    for port in ports:
        url = f"http://127.0.0.1:{port}/v1"
        try:
            r = httpx.get(url + "/models", timeout=timeout)
        except httpx.HTTPError:
            continue
        if r.status_code == 200:
            model = None
            try:
                data = r.json().get("data") or []
                model = data[0].get("id") if data else None
            except (ValueError, AttributeError, IndexError):
                model = None
            return url, names.get(port, f"a server on port {port}"), model
    return None


_PROVIDER_KW = ("provider", "model", "base_url", "api_key", "account_id")


def client_for(client: Client | None = None, *, provider: str | None = None,
               model: str | None = None, base_url: str | None = None,
               api_key: str | Secret | None = None, account_id: str | None = None,
               session: Any = None) -> Client:
    """The client a front end uses: ``client`` as given, else the session's client for the
    choice these keywords (and the session, environment, probe) resolve to.

    Front ends take ``client=`` *or* the provider keywords; giving both is an error.
    """
    given = {k: v for k, v in zip(_PROVIDER_KW, (provider, model, base_url, api_key,
                                                  account_id), strict=True) if v is not None}
    if client is not None:
        if given:
            raise TypeError(f"give client= or {', '.join(given)}=, not both")
        from .client import Client

        if not isinstance(client, Client):
            raise TypeError(f"client= must be a qwq_magic.Client, not {type(client).__name__}")
        return client
    if session is None:
        from .state import session as default_session

        session = default_session
    c: Client = session.client(provider, model=model, base_url=base_url, api_key=api_key,
                               account_id=account_id)
    return c


def key_from_env(var: str, env: Mapping[str, str] | None = None) -> Secret:
    """The key in a variable the user names (``%qwq use … --key-env VAR``)."""
    v = _env(os.environ if env is None else env, var)
    if not v:
        raise ConfigurationError(f"The environment variable {var} is not set (or is empty).")
    return Secret(_check_key(v))


def key_variable(preset: Preset, env: Mapping[str, str] | None = None) -> str | None:
    """The first of the preset's own key variables that is set (``%qwq providers``)."""
    env = os.environ if env is None else env
    return next((v for v in preset.key_env if _env(env, v)), None)


def env_keys(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of every provider key variable that is set (to mask them wherever stored)."""
    from .providers import PRESETS

    env = os.environ if env is None else env
    names = {ENV_API_KEY, *(v for p in PRESETS.values() for v in p.key_env)}
    return [v for n in sorted(names) if (v := _env(env, n))]
