"""Plan: rows, batches, memory per device and time of every model stage, before a long run.

The package imports nothing on its own: the GPU check reads its memory model without Kedro; the
registry imports ``pipeline``.
"""
