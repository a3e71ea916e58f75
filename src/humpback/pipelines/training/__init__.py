"""Training: supervised fine-tuning of every model (backward, seed, M1, M2) with TRL.

The package imports nothing on its own: launched training processes (``launch.py``) and the GPU
check import its modules without Kedro; the registry imports ``pipeline``.
"""
