"""Stream messages recorded in the shape of ``/api/v1/stream`` (docs/stream.md), with fixed times.

The snapshot tests and the docs' screenshots feed these into the app instead of a live
coordinator, so the screens are the same on every run. The figures are those a camera
pipeline (camera 30 Hz → detector → sink, plus a logger) shows while the detector falls
behind and the logger failed.
"""

from __future__ import annotations

import math
from typing import Any

FLOW_ID = "5f3c2a9e-1b7d-4c11-9a0e-2d64c1f0b8aa"
START = "2026-12-04T13:07:44.862Z"
SAMPLES = 40
"""Updates recorded (40 s at a 1 s refresh): enough history for the sparklines."""


def _time(second: int) -> str:
    minutes, seconds = divmod(second, 60)
    return f"2026-12-04T13:{10 + minutes:02d}:{seconds:02d}.000Z"


def _summary(second: int) -> dict[str, Any]:
    return {
        "name": "camera-pipeline",
        "id": FLOW_ID,
        "status": "running",
        "machine": "robot-1",
        "path": "/home/robot/camera-pipeline/dataflow.yml",
        "started_at": START,
        "finished_at": None,
        "uptime_s": 135.0 + second,
        "reason": None,
        "external": False,
        "stop_requested": False,
        "machines": ["robot-1"],
        "nodes": 4,
    }


def _others() -> list[dict[str, Any]]:
    base = _summary(0)
    return [
        {
            **base,
            "name": "lidar-mapping",
            "id": "9a41d0c2-77aa-4f3b-8d2e-0c5b7e9f1a23",
            "uptime_s": 7260.0,
            "nodes": 6,
        },
        {
            **base,
            "name": "calibration",
            "id": "0d7e5b11-3c2a-4e8f-b9d0-6a1f2e3c4d5b",
            "status": "failed",
            "uptime_s": 42.0,
            "nodes": 2,
            "reason": "node 'solver' exited with code 1",
        },
    ]


def _input(source: str, received: int, dropped: int, queued: int, p50: float) -> dict[str, Any]:
    return {
        "source": source,
        "received": received,
        "dropped": dropped,
        "queued": queued,
        "latency_bounds_us": [100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0],
        "latency_buckets": [0, 0, 0, 0, 0, 0, 0, 0] if p50 <= 0 else _buckets(p50),
        "latency_sum_us": p50 * received,
        "latency_count": received,
    }


def _buckets(p50: float) -> list[int]:
    bounds = [100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]
    index = next((i for i, b in enumerate(bounds) if p50 <= b), len(bounds))
    buckets = [0] * 8
    buckets[index] = 10
    return buckets


def _rates(second: int) -> dict[str, float]:
    wobble = math.sin(second / 3.0)
    return {
        "camera": 30.0 + 0.4 * wobble,
        "detector": 18.0 + 6.0 * wobble,
        "sink": 18.0 + 6.0 * wobble,
    }


def _nodes(second: int) -> dict[str, Any]:
    rate = _rates(second)
    n = 4000 + 30 * second
    detected = int(n * 0.6)
    return {
        "camera": {
            "state": "running", "pid": 41207, "cpu_percent": 12.4, "memory_bytes": 96 * 2**20,
            "restarts": 0, "errors": 0, "input_rate": rate["camera"], "output_rate": rate["camera"],
            "p50_latency_us": 180.0, "processing_p50_us": 95.0, "dropped": 0, "queued": 0,
            "inputs": {"tick": _input("dora/timer/hz/30", n, 0, 0, 180.0)},
            "outputs": {"frame": {"sent": n, "bytes": n * 4 * 2**20}},
        },
        "detector": {
            "state": "running", "pid": 41208, "cpu_percent": 87.5, "memory_bytes": 612 * 2**20,
            "restarts": 1, "errors": 3, "input_rate": rate["detector"], "output_rate": rate["detector"],
            "p50_latency_us": 4560.0, "processing_p50_us": 31200.0, "dropped": 1520 + 12 * second,
            "queued": 2,
            "inputs": {"frame": _input("camera/frame", n, 1520 + 12 * second, 2, 4560.0)},
            "outputs": {"detections": {"sent": detected, "bytes": detected * 512}},
        },
        "sink": {
            "state": "running", "pid": 41209, "cpu_percent": 3.1, "memory_bytes": 48 * 2**20,
            "restarts": 0, "errors": 0, "input_rate": rate["sink"] + rate["camera"], "output_rate": 0.0,
            "p50_latency_us": 820.0, "processing_p50_us": 40.0, "dropped": 0, "queued": 0,
            "inputs": {
                "detections": _input("detector/detections", detected, 0, 0, 820.0),
                "frame": _input("camera/frame", n, 0, 0, 650.0),
            },
            "outputs": {},
        },
        "logger": {
            "state": "failed", "pid": None, "cpu_percent": None, "memory_bytes": None, "exit_code": 1,
            "restarts": 0, "errors": 1, "input_rate": None, "output_rate": None,
            "p50_latency_us": None, "dropped": None, "queued": None,
            "inputs": {"detections": _input("detector/detections", 12, 0, 0, 0.0)},
            "outputs": {},
        },
    }  # fmt: skip


def _edges(second: int) -> list[dict[str, Any]]:
    rate = _rates(second)
    n = 4000 + 30 * second

    def edge(
        source: str, target: str, value: float | None, p50: float | None, dropped: int = 0
    ) -> dict[str, Any]:
        backend = None if source.startswith("dora/") else "shm"
        return {
            "source": source, "target": target, "backend": backend, "data_format": "arrow",
            "received": n, "dropped": dropped, "queued": 0, "rate": value, "p50_latency_us": p50,
        }  # fmt: skip

    return [
        edge("dora/timer/hz/30", "camera/tick", rate["camera"], 180.0),
        edge("camera/frame", "detector/frame", rate["detector"], 4560.0, 1520 + 12 * second),
        edge("camera/frame", "sink/frame", rate["camera"], 650.0),
        edge("detector/detections", "sink/detections", rate["sink"], 820.0),
        edge("detector/detections", "logger/detections", None, None),
    ]


def _port_rates(second: int) -> dict[str, Any]:
    rate = _rates(second)
    return {
        "camera": {"inputs": {"tick": rate["camera"]}, "outputs": {"frame": rate["camera"]},
                   "bytes_out": {"frame": rate["camera"] * 4 * 2**20}},
        "detector": {"inputs": {"frame": rate["detector"]}, "outputs": {"detections": rate["detector"]},
                     "bytes_out": {"detections": rate["detector"] * 512}},
        "sink": {"inputs": {"detections": rate["sink"], "frame": rate["camera"]},
                 "outputs": {}, "bytes_out": {}},
        "logger": {"inputs": {}, "outputs": {}, "bytes_out": {}},
    }  # fmt: skip


LOGS = [
    (2, "INFO", "camera", "stdout", "streaming 1024x1024 frames at 30 Hz"),
    (3, "INFO", "detector", "log", "model loaded in 1.8 s"),
    (5, "WARN", "detector", "log", "frame queue full: dropping the oldest frame"),
    (8, "INFO", "sink", "stdout", "writing detections to out/detections.parquet"),
    (11, "ERROR", "logger", "stderr", "PermissionError: [Errno 13] Permission denied: '/var/log/robot'"),
    (11, "ERROR", None, "runtime", "node 'logger' exited with code 1"),
    (17, "WARN", "detector", "log", "inference took 61 ms (budget 33 ms)"),
    (23, "INFO", "detector", "log", "3 objects: person 0.93, cup 0.71, chair 0.64"),
    (29, "WARN", "detector", "log", "frame queue full: dropping the oldest frame"),
    (35, "INFO", "sink", "stdout", "1000 detections written"),
    (38, "ERROR", "detector", "log", "CUDA out of memory, falling back to CPU for this batch"),
]
"""(second, level, node, source, message) of the recorded log records."""


def messages(samples: int = SAMPLES) -> list[dict[str, Any]]:
    """The recorded session: hello, then each second a dataflows and a dataflow update, and logs."""
    out: list[dict[str, Any]] = [
        {
            "type": "hello",
            "time": _time(0),
            "version": "0.1.0",
            "interval": 1.0,
            "subscription": {"dataflow": FLOW_ID, "node": [], "level": "INFO", "logs": True},
        }
    ]
    for second in range(samples):
        out.append({"type": "dataflows", "time": _time(second), "dataflows": [_summary(second), *_others()]})
        out.append(
            {
                "type": "dataflow",
                "time": _time(second),
                "dataflow": _summary(second),
                "nodes": _nodes(second),
                "edges": _edges(second),
                "rates": _port_rates(second),
            }
        )
        for at, level, node, source, message in LOGS:
            if at == second:
                record = {
                    "timestamp": _time(second).replace(".000Z", ".250118Z"),
                    "level": level, "dataflow": "camera-pipeline", "run_id": FLOW_ID, "node": node,
                    "machine": "robot-1", "message": message, "trace_id": None, "span_id": None,
                    "source": source, "fields": {},
                }  # fmt: skip
                out.append({"type": "log", "time": _time(second), "record": record})
    return out
