"""Starting the service from the command line (`ocrgan serve`, `ocrgan demo`): settings from the options, the
checks that answer a user's mistake before the model loads, loading the model, running uvicorn.

Nothing here imports torch, the model or the app at module level: the checks must answer in a moment."""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path

# the options that set a service setting: name -> (flag, argparse keywords, what it sets, its default where the
# setting's own default says nothing to a user)
SETTING_OPTIONS: dict[str, tuple[str, dict, str, str | None]] = {
    "host": ("--host", {}, "address to listen on", None),
    "port": ("--port", {"type": int}, "port to listen on", None),
    "checkpoint": ("--checkpoint", {"type": Path}, "the safetensors checkpoint", None),
    "device": ("--device", {"choices": ["auto", "cpu", "cuda"]}, "where the model runs; auto: cuda when available",
               None),
    "stride": ("--stride", {"type": int}, "frames between scored windows", "the checkpoint's"),
    "redis_url": ("--redis-url", {}, "Redis URL of the backend shared by replicas",
                  "none: the embedded backend, in-process"),
    "log_level": ("--log-level", {"choices": ["debug", "info", "warning", "error"]}, "log verbosity", None),
}


class SettingDefault:
    """A setting's default as an option's help shows it; service.settings is imported only when help is shown."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name, self.value = name, value

    def __str__(self) -> str:
        if self.value is None:
            from service.settings import Settings

            self.value = str(Settings.model_fields[self.name].get_default(call_default_factory=True))
        return f"OCRGAN_{self.name.upper()} from the environment or .env, else {self.value}"


def add_setting_options(parser: argparse.ArgumentParser, *names: str, **defaults: str) -> None:
    """Options for these settings; left out, a setting keeps its value from the environment, .env or its default
    (`defaults` names what that default is where the command's differs from the setting's)."""
    for name in names:
        flag, keywords, what, default = SETTING_OPTIONS[name]
        action = parser.add_argument(flag, dest=name, help=what, **keywords)
        # set after add_argument, which expands the help (Python 3.13) before the action has this attribute
        action.setting_default = SettingDefault(name, defaults.get(name, default))
        action.help = f"{what} (default: %(setting_default)s)"


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


def cli_settings(args: argparse.Namespace, **defaults):
    """Settings from the environment / .env, with the command line on top (`defaults` below both)."""
    from pydantic import ValidationError

    from service.settings import Settings

    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    try:
        if defaults:
            env = Settings()
            defaults = {k: v for k, v in defaults.items() if k not in env.model_fields_set}
        return Settings(**{**defaults, **given})
    except (ValidationError, ValueError) as e:
        raise SystemExit(f"ocrgan: invalid settings:\n{e}") from None


def _listener(host: str) -> socket.socket:
    """A socket as uvicorn opens it to listen on `host` (IPv6 for an address with a colon, SO_REUSEADDR)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def port_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on host:port, found by binding it for a moment, or None."""
    try:
        with _listener(host) as s:
            s.bind((host, port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return f"{host}:{port} is already in use (another server?); choose a free port with --port or OCRGAN_PORT"
        return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    with _listener(host) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def load_host(settings):
    """The model, or None after logging why the checkpoint cannot be used."""
    from model import CheckpointError
    from service.inference.host import ModelHost

    try:
        return ModelHost.load(settings)
    except (CheckpointError, ValueError, RuntimeError) as e:
        logging.getLogger("ocrgan").error("cannot start: %s", e)
        return None


def run_server(settings, host, on_startup=None) -> None:
    import uvicorn

    from service.api.app import create_app

    uvicorn.run(create_app(settings, host, on_startup), host=settings.host, port=settings.port,
                log_level=settings.log_level, ws="websockets-sansio", access_log=settings.log_level == "debug")
