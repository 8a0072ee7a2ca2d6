"""Reading CloudFormation YAML templates (``deploy/resources.yaml``) into their JSON form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chalicelib.core.errors import ConfigError
from mfawatch.paths import DEPLOY_DIR

RESOURCES_TEMPLATE = DEPLOY_DIR / "resources.yaml"


def load_cfn_yaml(text: str, source: str = "<template>") -> dict[str, Any]:
    """Parse a CloudFormation YAML template, turning short-form tags into their JSON form.

    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Sub ...`` -> ``{"Fn::Sub": ...}`` and so on for every ``!Fn`` tag.
    """
    import yaml  # a development dependency: deploy templates are built on a workstation or CI

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # PyYAML has no other node kind
            raise ConfigError(f"unexpected YAML node {type(node).__name__} for !{suffix}")
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            logical, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [logical, attribute]}
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct_tag)
    try:
        document = yaml.load(text, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise ConfigError(f"{source}: not a CloudFormation template (no Resources mapping)")
    return document


def load_resources_template(path: Path = RESOURCES_TEMPLATE) -> dict[str, Any]:
    """A CloudFormation YAML template file (deploy/resources.yaml by default) in JSON form."""
    return load_cfn_yaml(path.read_text(encoding="utf-8"), str(path))
