"""Every Prometheus metric the API exposes, in one place.

With several uvicorn workers (PROMETHEUS_MULTIPROC_DIR set), counters and histograms are
summed over workers; each gauge says how it combines them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "prodcat_api_requests_total", "HTTP requests by route and status", ["route", "method", "status"]
)
LATENCY = Histogram(
    "prodcat_api_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MODEL_LOADED = Gauge(
    "prodcat_api_model_loaded", "1 when every worker has a model loaded", multiprocess_mode="min"
)
PREDICTIONS = Counter("prodcat_api_predictions_total", "Predictions by category", ["category"])
CONFIDENCE = Histogram(
    "prodcat_api_prediction_confidence",
    "Confidence of the top category",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
MODEL_INFO = Gauge(
    "prodcat_api_model_info",
    "1 for each model version some worker serves",
    ["version", "source"],
    multiprocess_mode="max",
)
RELOADS = Counter("prodcat_api_model_reloads_total", "Model versions swapped in")
RELOAD_FAILURES = Counter("prodcat_api_model_reload_failures_total", "Failed model reloads")
PREDICTION_LOGS_WRITTEN = Counter(
    "prodcat_api_prediction_logs_written_total", "Prediction records written to PostgreSQL"
)
PREDICTION_LOGS_DROPPED = Counter(
    "prodcat_api_prediction_logs_dropped_total",
    "Prediction records dropped because the log queue was full (database down or slow)",
)
PREDICTION_LOG_WRITE_FAILURES = Counter(
    "prodcat_api_prediction_log_write_failures_total", "Failed prediction-log batch writes"
)
PREDICTION_LOG_QUEUE = Gauge(
    "prodcat_api_prediction_log_queue_depth",
    "Prediction records waiting to be written",
    multiprocess_mode="livesum",
)
BATCH_SIZE = Histogram(
    "prodcat_api_model_batch_size",
    "Items per model call (single predictions are coalesced)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
OVERLOAD_REJECTIONS = Counter(
    "prodcat_api_overload_rejections_total",
    "Predictions answered 503: the model's queue was full, or the wait for it too long",
    ["reason"],
)
SHADOW_PREDICTIONS = Counter(
    "prodcat_api_shadow_predictions_total",
    "Live inputs the challenger scored in shadow, by agreement with the champion's answer",
    ["challenger_version", "agrees"],
)
# The same without labels, exposed from the start (a dashboard's agreement rate reads them).
SHADOW_SCORED = Counter("prodcat_api_shadow_scored_total", "Live inputs scored in shadow")
SHADOW_AGREED = Counter(
    "prodcat_api_shadow_agreed_total", "Live inputs where the challenger agreed with the champion"
)
SHADOW_LATENCY = Histogram(
    "prodcat_api_shadow_seconds_per_item",
    "The challenger's model time per item, in shadow (off the request path)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
SHADOW_DROPPED = Counter(
    "prodcat_api_shadow_dropped_total", "Sampled inputs dropped: the shadow queue was full"
)
SHADOW_FAILURES = Counter(
    "prodcat_api_shadow_failures_total", "Shadow calls that failed (the challenger crashed)"
)
WORKERS = Gauge("prodcat_api_workers", "API worker processes alive", multiprocess_mode="livesum")
WORKER_MEMORY = Gauge(
    "prodcat_api_worker_resident_memory_bytes",
    "Resident memory of each API worker (label pid with several workers)",
    multiprocess_mode="liveall",
)
WORKER_PEAK_MEMORY = Gauge(
    "prodcat_api_worker_peak_resident_memory_bytes",
    "Highest resident memory each API worker has had",
    multiprocess_mode="liveall",
)


def note_worker_memory() -> tuple[int, int]:
    """Set this process's memory gauges; (resident, peak resident) in bytes."""
    resident, peak = read_memory()
    WORKER_MEMORY.set(resident)
    WORKER_PEAK_MEMORY.set(peak)
    return resident, peak


def read_memory() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes, from /proc; peak from getrusage elsewhere."""
    try:
        with open("/proc/self/status", "rb") as status:
            fields = dict(line.split(b":", 1) for line in status if line.startswith(b"Vm"))
        return int(fields[b"VmRSS"].split()[0]) * 1024, int(fields[b"VmHWM"].split()[0]) * 1024
    except (OSError, KeyError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak
