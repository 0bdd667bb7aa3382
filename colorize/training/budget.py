"""The training budget record: what each run spent, in ``output_dir/budget/run-<start>.json``, written by the
trainers (`BudgetLog`) and read back by `colorize publish` and the model card (`read_budget`), the GPU launcher
(`throughput`)."""

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def describe_hardware(device: torch.device | str, num_processes: int = 1) -> str:
    """One line: processes x device, torch threads per process."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{num_processes} x {name}, {torch.get_num_threads()} torch threads/process"


class BudgetLog:
    """What this run spent, rewritten at each checkpoint and at the end, so that a run killed half-way still
    leaves its record: the command, start time, hardware, precision, steps, images seen, hours and the last
    validation scores (``note`` is free text a person may add)."""

    def __init__(self, output_dir: str, command: str, hardware: str, mixed_precision: str, start_step: int,
                 images_per_step: int):
        self.started = time.time()
        started = datetime.fromtimestamp(self.started, timezone.utc)
        self.path = Path(output_dir) / "budget" / f"run-{started:%Y%m%dT%H%M%SZ}.json"
        self.record = {
            "command": command,
            "started": started.isoformat(timespec="seconds"),
            "hardware": hardware,
            "mixed_precision": mixed_precision,
            "start_step": start_step,
            "images_per_step": images_per_step,
        }

    def write(self, step: int, validation_metrics: dict | None = None, images_seen: int | None = None):
        """The record as it stands at optimiser step ``step`` (``images_seen``: when batches vary in size)."""
        if images_seen is None:
            images_seen = (step - self.record["start_step"]) * self.record["images_per_step"]
        self.record.update(
            end_step=step,
            images_seen=images_seen,
            hours=round((time.time() - self.started) / 3600, 4),
            validation=validation_metrics,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.record, indent=2) + "\n")


def read_budget(model_dir: str | Path) -> list[dict]:
    """The training runs recorded in ``model_dir/budget/*.json``, oldest first."""
    records = [json.loads(path.read_text()) for path in sorted(Path(model_dir).glob("budget/*.json"))]
    return sorted(records, key=lambda record: record["started"])


def throughput(record: dict) -> dict:
    """A run's speed from its record: images and optimiser steps per second."""
    seconds = record["hours"] * 3600
    return {"images_per_second": round(record["images_seen"] / seconds, 1),
            "steps_per_second": round((record["end_step"] - record["start_step"]) / seconds, 2)}
