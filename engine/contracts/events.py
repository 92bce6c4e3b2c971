"""Contract: the event stream (engine/events.py) and its metrics as the tidy CSV every
exporter writes (engine/metrics_export.py: the Monitor's Export CSV is the CLI's)."""

from __future__ import annotations

from engine.events import (
    STAGE_ENDED,
    Event,
    EventReader,
    MetricEvent,
    StageEvent,
    event_files,
    parse_event,
    parse_lines,
)
from engine.metrics_export import MetricSeries, write_metrics_csv

__all__ = ["STAGE_ENDED", "Event", "EventReader", "MetricEvent", "MetricSeries", "StageEvent", "event_files",
           "parse_event", "parse_lines", "write_metrics_csv"]
