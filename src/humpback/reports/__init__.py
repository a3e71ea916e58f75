"""Reports: method-health rows and the statistics behind them, model and dataset cards (their text is
in templates/)."""
