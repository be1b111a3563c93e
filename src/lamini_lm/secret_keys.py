"""Secrets never reach disk: API keys are read from the environment only. An override that carries one (a
secret-named key, a key-shaped value, a credential inside a URL) is refused before Hydra writes it to .hydra/; a
config file that holds one is refused at the stage's check (refuse_secret_values); and every config or command we
save or log is redacted."""

from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError, exit_on_user_error

# a key whose last part names a secret (teacher.api_key, openai_key, hub_token, wandb.password, headers.Authorization;
# not teacher.api_key_env, which names the environment variable holding it)
SECRET_NAME = re.compile(r"(^|[._])(api_?key|key|token|secret|password|passwd|pwd|credentials?|auth|authorization|"
                         r"bearer|cookie)$", re.IGNORECASE)
# tokens shaped like the keys this project's services issue (OpenAI, Hugging Face), wherever they sit in a value
SECRET_TOKEN = re.compile(r"(?<![\w-])(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,})")
# a URL parameter that carries a credential: ?api_key=, ?key=, ?token=, access_token=, a signed URL's sig=,
# X-Amz-Signature=, X-Amz-Credential=, X-Amz-Security-Token=
SECRET_PARAM = re.compile(r"(^|[._-])(api_?key|key|token|secret|password|passwd|pwd|credentials?|auth|authorization|"
                          r"sig|signature)$", re.IGNORECASE)
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_CHUNK = re.compile(r"[^\s'\"<>\[\]{}]+")  # a URL ends at a space, a quote or a bracket of Hydra's list/dict syntax
_PARAM = re.compile(r"(?<=[?&#;])([^=&#;]+)=([^&#;]*)")
# a secret-named key inside a dict value, and its value: teacher.params={api_key:...}
_DICT_ITEM = re.compile(r"([{,]\s*['\"]?([\w.-]+)['\"]?\s*:)(?!//)([^,}]*)")
REDACTED = "<redacted>"
HOW = "secrets are read from the environment only (e.g. export OPENAI_API_KEY=...; teacher.api_key_env names the " \
      "variable)"
IN_URL = "a user or password in a URL"


def _token_is_key(value: str, m: re.Match) -> bool:
    # alone, any such token; inside a longer value (a path, a URL), only one of mixed case, as issued keys are, so
    # that a folder named sk-learn-benchmarks-2024 is not taken for one
    token = m.group(0)
    return token == value.strip(" '\"") or (any(c.isupper() for c in token) and any(c.islower() for c in token))


def _urls(value: str):
    """The spans of the URLs in ``value``; a sweep's a,b of URLs is two (one ends where the next begins)."""
    for chunk in _CHUNK.finditer(value):
        starts = [m.start() for m in _URL_START.finditer(chunk.group(0))]
        for a, b in zip(starts, [*starts[1:], len(chunk.group(0))]):
            yield chunk.start() + a, chunk.start() + b


def _clean_url(url: str) -> tuple[str, list[str]]:
    """``url`` with its userinfo and its credential parameters' values redacted, and what they were."""
    found = []
    try:
        netloc = urlsplit(url.rstrip(",")).netloc
    except ValueError:  # e.g. an unbalanced [ of an IPv6 host: no userinfo to find
        netloc = ""
    if "@" in netloc:
        found.append(IN_URL)
        scheme_end = url.index("://") + 3
        url = url[:scheme_end] + REDACTED + url[scheme_end + netloc.rindex("@"):]

    def param(m):
        if SECRET_PARAM.search(m.group(1).strip()) and m.group(2).strip():
            found.append(f"the parameter {m.group(1).strip()}= in a URL")
            return f"{m.group(1)}={REDACTED}"
        return m.group(0)

    return _PARAM.sub(param, url), found


def _clean(value: str, override: bool = False) -> tuple[str, list[str]]:
    """``value`` with every secret in it redacted, and what they were (in words that never quote them).
    ``override``: a command-line value, whose {k: v} is a dict (in a config's text it is just text)."""
    found = []
    out, last = [], 0
    for a, b in _urls(value):
        url, kinds = _clean_url(value[a:b])
        out += [value[last:a], url]
        found += kinds
        last = b
    value = "".join([*out, value[last:]])

    def token(m):
        if _token_is_key(value, m):
            found.append("a key-shaped value")
            return REDACTED
        return m.group(0)

    def item(m):
        if SECRET_NAME.search(m.group(2)):
            found.append(f"the key {m.group(2)}")
            return m.group(1) + REDACTED
        return m.group(0)

    value = SECRET_TOKEN.sub(token, value)
    return (_DICT_ITEM.sub(item, value) if override else value), found


def secret_in(value: str, override: bool = False) -> str | None:
    """What secret ``value`` holds, in words that never quote it; None when it holds none."""
    found = _clean(value, override)[1]
    return found[0] if found else None


@exit_on_user_error
def refuse_secret_overrides(argv: list[str] | None = None) -> None:
    """Call before Hydra parses the command line: it would save the override, and echo it in its errors."""
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or arg.startswith("-"):
            continue
        what = "its name" if SECRET_NAME.search(key) else secret_in(value, override=True)
        if what:
            fix = "; give the URL without it" if "in a URL" in what else ""
            raise UserError(f"the override {key}=... looks like a secret ({what}); {HOW}, never from the command "
                            f"line{fix}: nothing was run or written")


def refuse_secret_values(node, where: str = "") -> None:
    """A config (a DictConfig, or its resolved dict) that holds a secret, from a config file of the user's: one
    UserError naming the key, never the value. The command line's were refused before (refuse_secret_overrides)."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        key = f"{where}.{k}" if where else str(k)
        if isinstance(v, str):
            check_value(key, v, secret_named=bool(SECRET_NAME.search(str(k))) and bool(v))
        else:
            refuse_secret_values(v, key)


def check_value(key: str, value, secret_named: bool = False) -> None:
    """One setting from a config file: a UserError naming ``key`` when its value holds a secret."""
    what = "a secret, by its name" if secret_named else secret_in(value) if isinstance(value, str) else None
    if what:
        fix = "put the key in the environment and give the URL without it" if "in a URL" in what else \
            "remove it from the file"
        raise UserError(f"{key} holds {what} in a config file; {HOW}: {fix}")


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with every secret in it removed (what a lock file records of a command)."""
    out = []
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and SECRET_NAME.search(key):
            out.append(arg[:len(arg) - len(value)] + REDACTED)
        else:
            out.append(arg[:len(arg) - len(value)] + _clean(value, override=True)[0])
    return out


def redacted(cfg: DictConfig) -> dict:
    """The resolved config as a dict, with any secret-named key's value and any secret inside a value removed."""

    def clean(node):
        if isinstance(node, dict):
            return {k: (REDACTED if SECRET_NAME.search(str(k)) and v else clean(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return _clean(node)[0] if isinstance(node, str) else node

    return clean(OmegaConf.to_container(cfg, resolve=True))
