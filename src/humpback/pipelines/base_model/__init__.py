"""Base model: the base and aligned models materialised once as safetensors checkpoints.

The package imports nothing on its own: the GPU check imports its nodes without Kedro; the registry
imports ``pipeline``.
"""
