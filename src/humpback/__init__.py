"""humpback: instruction backtranslation (Li et al. 2023) as Kedro pipelines."""

__version__ = "0.1.0"
