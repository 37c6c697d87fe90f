"""Series names read from exposition text, pinned on what prometheus_client really writes."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.deploy.exposition import samples, series_names


def test_series_names_of_each_metric_type() -> None:
    r = CollectorRegistry()
    Counter("c_total", "", ["stream"], registry=r)  # labelled, no child yet: still exported
    Histogram("h_seconds", "", registry=r)
    Gauge("g", "", registry=r).set(1)
    names = series_names(generate_latest(r).decode())
    assert {"c_total", "h_seconds_bucket", "h_seconds_sum", "h_seconds_count", "g"} <= names
    assert not {"c", "h_seconds"} & names  # a counter's base name and a histogram's bare name are not series


def test_samples_of_one_name_only() -> None:
    r = CollectorRegistry()
    c = Counter("frames_total", "", ["stream"], registry=r)
    c.labels("gate").inc()
    Gauge("frames_total_max", "", registry=r).set(2)  # shares the prefix
    text = generate_latest(r).decode()
    assert samples(text, "frames_total") == ['frames_total{stream="gate"} 1.0']
    assert samples(text, "frames_total_max") == ["frames_total_max 2.0"]
