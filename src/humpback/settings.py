"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from humpback.hooks import (
    MachineSettingsHooks,
    NodeResourceHooks,
    RawDataHooks,
    StopHooks,
    ValidateParametersHook,
)
from humpback.params import CONFIG_LOADER_ARGS

HOOKS = (ValidateParametersHook(), MachineSettingsHooks(), RawDataHooks(), StopHooks(), NodeResourceHooks())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = CONFIG_LOADER_ARGS
