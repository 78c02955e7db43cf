"""Strict readers for settings that come from the environment.

django-environ's own casts are deliberately not used for scalars: its bool turns any unknown
word (`DJANGO_DEBUG=ture`) into False, a value starting with `$` is looked up as the name of
another variable (which corrupts generated secrets), and FileAwareEnv silently prefers `X_FILE`
when `X` is set too. Here every bad value raises ConfigurationError naming the variable.
An empty value counts as unset, because compose passes `${VAR:-}` through as "".
"""

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import environ

from config.errors import ConfigurationError

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class Env:
    def __init__(self, environ_: Mapping[str, str] = os.environ) -> None:
        self._environ = environ_

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name, "")
        return value or None

    def string(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def secret(self, name: str) -> str | None:
        """`name` itself, or the contents of the file `name_FILE` points at (Docker secrets)."""
        file_name = f"{name}_FILE"
        value, path = self.raw(name), self.raw(file_name)
        if value is not None and path is not None:
            raise ConfigurationError(f"{name} and {file_name} are both set; set only one of them")
        if path is None:
            return value
        try:
            contents = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigurationError(
                f"{file_name} points at {path}, which does not exist"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise ConfigurationError(f"{file_name}: cannot read {path}: {reason}") from None
        # Files written by `echo` or an editor end in a newline that is not part of the secret.
        return contents.rstrip("\r\n") or None

    def secret_source(self, name: str) -> str:
        """Which variable supplied the secret `name`, for error messages."""
        return f"{name}_FILE" if self.raw(f"{name}_FILE") is not None else name

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ConfigurationError(
            f"{name}={value!r} is not a boolean; use one of true/false, yes/no, on/off, 1/0"
        )

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a whole number") from None
        if not minimum <= number <= maximum:
            raise ConfigurationError(
                f"{name}={number} is out of range; use a value from {minimum} to {maximum}"
            )
        return number

    def strings(self, name: str, default: tuple[str, ...] = ()) -> list[str]:
        value = self.raw(name)
        if value is None:
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default).strip()
        canonical = {choice.lower(): choice for choice in choices}
        if value.lower() not in canonical:
            raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(choices)}")
        return canonical[value.lower()]

    def path(self, name: str, default: str) -> Path:
        value = self.string(name, default)
        path = Path(value)
        if not path.is_absolute():
            raise ConfigurationError(f"{name}={value!r} must be an absolute path")
        return path

    def database_url(self, name: str) -> dict | None:
        url = self.secret(name)
        if url is None:
            return None
        shape = "postgres://user:password@host:port/name"
        # django-environ warns about unknown schemes by printing the parsed URL, password included.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                config = environ.Env.db_url_config(url)
            except ValueError:
                raise ConfigurationError(f"{name} is not a valid URL; expected {shape}") from None
        if config.get("ENGINE") != "django.db.backends.postgresql" or not config.get("NAME"):
            raise ConfigurationError(f"{name} must be a PostgreSQL URL like {shape}")
        return config
