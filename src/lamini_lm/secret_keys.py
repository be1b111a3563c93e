"""Secrets never reach disk: API keys are read from the environment only, so an override that carries one is
refused before Hydra writes it to .hydra/, and every config we save or log is redacted."""

from __future__ import annotations

import re
import sys

from omegaconf import DictConfig, OmegaConf

from lamini_lm.errors import UserError, exit_on_user_error

# a key whose last part names a secret (teacher.api_key, openai_key, hub_token, wandb.password, headers.Authorization;
# not teacher.api_key_env, which names the environment variable holding it)
SECRET_NAME = re.compile(r"(^|[._])(api_?key|key|token|secret|password|passwd|pwd|credentials?|auth|authorization|"
                         r"bearer|cookie)$", re.IGNORECASE)
# values shaped like the keys this project's services issue (OpenAI, Hugging Face)
SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,})$")


@exit_on_user_error
def refuse_secret_overrides(argv: list[str] | None = None) -> None:
    """Call before Hydra parses the command line: it would save the override, and echo it in its errors."""
    for arg in sys.argv[1:] if argv is None else argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or arg.startswith("-"):
            continue
        values = [v.strip(" '\"[]") for v in value.split(",")]  # a sweep: a,b,c
        if SECRET_NAME.search(key) or any(SECRET_VALUE.match(v) for v in values):
            raise UserError(
                f"the override {key}=... looks like a secret; secrets are read from the environment only "
                "(e.g. export OPENAI_API_KEY=...; teacher.api_key_env names the variable), never from the command "
                "line: nothing was run or written"
            )


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret-looking override removed (what a lock file records of a command)."""
    out = []
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        secret = sep and (SECRET_NAME.search(key) or any(SECRET_VALUE.match(v.strip(" '\"[]")) for v in value.split(",")))
        out.append(arg[:len(arg) - len(value)] + "<redacted>" if secret else arg)
    return out


def redacted(cfg: DictConfig) -> dict:
    """The resolved config as a dict, with any secret-looking key's value removed."""

    def clean(node):
        if isinstance(node, dict):
            return {k: ("<redacted>" if SECRET_NAME.search(str(k)) and v else clean(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return clean(OmegaConf.to_container(cfg, resolve=True))
