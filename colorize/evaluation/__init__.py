"""Scoring colorizations against the true colours: the metrics (`metrics`), the one scoring function of `colorize
evaluate` and training validation (`scoring.colorize_and_score`), the one renderer of their results (`report`),
and the library part of `colorize evaluate` (`evaluate`: a folder of photos to metrics.json and report.md)."""
