"""The metric-name extraction that the dashboard and alert checks rely on."""

import pytest

from tests.deploy.promql import metric_names, variable_query


@pytest.mark.parametrize(("expr", "names"), [
    ("ocrgan_stream_up == 0", {"ocrgan_stream_up"}),
    ('max by (stream) (ocrgan_anomaly_score{stream=~"$stream"})', {"ocrgan_anomaly_score"}),
    ("histogram_quantile(0.99, sum by (le) (rate(ocrgan_inference_seconds_bucket[$__rate_interval])))",
     {"ocrgan_inference_seconds_bucket"}),
    ("sum(rate(ocrgan_batch_size_sum[5m])) / sum(rate(ocrgan_batch_size_count[5m]))",
     {"ocrgan_batch_size_sum", "ocrgan_batch_size_count"}),
    ("sum by (stream) (increase(a_total[5m])) == 0 and on (stream) max by (stream) (b) == 1", {"a_total", "b"}),
    ('up{job="ocrgan", instance=~"x.*"} offset 5m == bool 0', {"up"}),
    ("sum(rate(x_total[1m])) without (instance) > 1e3 unless ignoring (le) y", {"x_total", "y"}),
    ('label_replace(z, "dst", "$1", "src", "(.*)")', {"z"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_variable_query_unwraps_label_values() -> None:
    assert variable_query("label_values(ocrgan_stream_up, stream)") == "ocrgan_stream_up"
    assert variable_query('label_values(up{job="ocrgan"}, instance)') == 'up{job="ocrgan"}'
    assert variable_query("ocrgan_streams") == "ocrgan_streams"
