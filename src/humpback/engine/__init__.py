"""Shared engine code, to be edited with care: the one runner of every model stage, where its work runs
(this process or Ray Data) with resumable shards, and the caches between stages."""
