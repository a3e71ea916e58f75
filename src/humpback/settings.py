"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from humpback.hooks import NodeResourceHooks, RawDataHooks, ValidateParametersHook
from humpback.params import CONFIG_LOADER_ARGS

HOOKS = (ValidateParametersHook(), RawDataHooks(), NodeResourceHooks())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = CONFIG_LOADER_ARGS
