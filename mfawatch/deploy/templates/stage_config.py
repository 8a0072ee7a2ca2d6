"""A stage of ``.chalice/config.json`` as the templates read it: the one reader of that file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.config import ENV_CONCURRENCY, MIN_CONCURRENCY
from chalicelib.core.errors import ConfigError
from mfawatch.deploy.templates.functions import PARKED_HANDLER
from mfawatch.deploy.templates.names import StageNames
from mfawatch.paths import CHALICE_CONFIG

SUBSCRIPTIONS_KEY = "mfawatch_subscriptions"
"""A stage's e-mail subscriptions, ``{"alerts": [address, ...], "pager": [...]}`` by output name,
in ``.chalice/config.json`` beside Chalice's keys (Chalice ignores keys it does not know);
``mfawatch init`` writes them and ``mfawatch deploy`` subscribes them."""


@dataclass(frozen=True)
class StageConfig:
    """What the templates need from ``.chalice/config.json`` for one stage."""

    app_name: str
    stage: str
    config: Mapping[str, Any]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], stage: str) -> StageConfig:
        stages = config.get("stages") or {}
        if stage not in stages:
            raise ConfigError(
                f"no stage {stage!r}; have {', '.join(sorted(stages)) or 'none'} "
                f"(`mfawatch init --stage {stage}` adds it)"
            )
        app_name = config.get("app_name")
        if not isinstance(app_name, str) or not app_name:
            raise ConfigError("app_name is not set")
        return cls(app_name=app_name, stage=stage, config=config)

    @property
    def names(self) -> StageNames:
        return StageNames(self.app_name, self.stage)

    def _levels(self, handler: str) -> list[Mapping[str, Any]]:
        """Chalice's lookup order, most specific first (chalice/config.py, _chain_lookup)."""
        stage = self.config["stages"][self.stage] or {}
        return [
            (stage.get("lambda_functions") or {}).get(handler) or {},
            stage,
            (self.config.get("lambda_functions") or {}).get(handler) or {},
            self.config,
        ]

    def lookup(self, handler: str, key: str, default: Any) -> Any:
        for level in self._levels(handler):
            if level.get(key) is not None:
                return level[key]
        return default

    def environment(self, handler: str | None = None) -> dict[str, str]:
        """The environment as Chalice merges it (chalice/config.py, _chain_merge): global, stage,
        then the stage's entry for ``handler`` (none: what every function of the stage gets)."""
        merged: dict[str, str] = {}
        stage = self.config["stages"][self.stage] or {}
        function = (stage.get("lambda_functions") or {}).get(handler or "") or {}
        for level in (self.config, stage, function):
            merged.update(level.get("environment_variables") or {})
        return merged

    def subscriptions(self) -> dict[str, list[str]]:
        """Output name -> e-mail addresses to subscribe to its topic (:data:`SUBSCRIPTIONS_KEY`)."""
        raw = (self.config["stages"][self.stage] or {}).get(SUBSCRIPTIONS_KEY) or {}
        where = f"stages.{self.stage}.{SUBSCRIPTIONS_KEY}"
        if not isinstance(raw, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v) for v in raw.values()
        ):
            raise ConfigError(
                f'{where} must map output names to lists of addresses: {{"alerts": [...]}}'
            )
        return {str(k): list(v) for k, v in raw.items()}

    def reserved_concurrency(self, handler: str) -> int:
        """A function's ``reserved_concurrency`` as Chalice looks it up; :class:`ConfigError`
        when it is not set: every function of a stage runs capped (docs/outputs.md)."""
        value = self.lookup(handler, "reserved_concurrency", None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"stage {self.stage!r}: {handler}'s reserved_concurrency is {value!r}; set "
                f"reserved_concurrency in .chalice/config.json, and {ENV_CONCURRENCY} to the "
                "same number"
            )
        return value

    def consumer_concurrency(self) -> int:
        """The parked-event consumer's reserved concurrency, which its SQS event source takes
        as its maximum concurrency (at least 2, as SQS requires)."""
        value = self.reserved_concurrency(PARKED_HANDLER)
        if value < MIN_CONCURRENCY:
            raise ConfigError(
                f"stage {self.stage!r}: {PARKED_HANDLER}'s reserved_concurrency is {value}; its "
                f"SQS event source's maximum concurrency must be at least {MIN_CONCURRENCY}"
            )
        return value

    def autogen_policy(self, handler: str) -> bool:
        return bool(self.lookup(handler, "autogen_policy", True))  # Chalice's default: on

    def manage_iam_role(self, handler: str) -> bool:
        return bool(self.lookup(handler, "manage_iam_role", True))


def read_config_document(path: Path) -> tuple[str, dict[str, Any]]:
    """The text and the JSON object of ``.chalice/config.json``; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
        config = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return text, config


def config_text(config: Mapping[str, Any], previous_text: str = "\n") -> str:
    """The file text of a config (2-space JSON), keeping the previous text's final newline."""
    ending = "\n" if previous_text.endswith("\n") else ""
    return json.dumps(config, indent=2, ensure_ascii=False) + ending


def load_stage_config(stage: str, path: Path = CHALICE_CONFIG) -> StageConfig:
    """One stage of ``.chalice/config.json``: the one reader of that file (replay ``--stage``,
    ``policy``, ``deploy-template``). Errors name the file."""
    _, config = read_config_document(path)
    try:
        return StageConfig.from_config(config, stage)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
