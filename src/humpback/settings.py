"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from humpback.hooks import NodeResourceHooks, RawDataHooks, ValidateParametersHook

HOOKS = (ValidateParametersHook(), RawDataHooks(), NodeResourceHooks())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"parameters": ["parameters*", "parameters*/**", "**/parameters*"]},
    # An environment overrides single values (`ingestion.web.max_documents`), not whole blocks.
    "merge_strategy": {"parameters": "soft"},
}
