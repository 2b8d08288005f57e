"""docs/observability: the integration examples are checked statically (no container engine runs here).

Every YAML and JSON file parses; each compose file pins its images and publishes its ports on
127.0.0.1; the collector configs receive OTLP on 4317 (gRPC) and 4318 (HTTP); Prometheus scrapes the
collector and the coordinator; the Grafana dashboard queries the Doradus metric names; the README and
guides name the variables Doradus reads and say the files are not run on this machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "docs" / "observability"
STACKS = ("prometheus-grafana", "elasticsearch-kibana", "logstash")
YAML_FILES = sorted([*ROOT.rglob("*.yml"), *ROOT.rglob("*.yaml")])
JSON_FILES = sorted(ROOT.rglob("*.json"))
COMPOSE_FILES = [ROOT / stack / "docker-compose.yml" for stack in STACKS]
COLLECTOR_FILES = [ROOT / stack / "otel-collector.yaml" for stack in STACKS]
GUIDES = [ROOT / stack / "guide.md" for stack in STACKS]
DASHBOARD = ROOT / "prometheus-grafana" / "grafana" / "dashboards" / "doradus-dashboard.json"

# The Prometheus names of the coordinator's /metrics (see the README's table).
PROMETHEUS_NAMES = (
    "doradus_messages_sent_total",
    "doradus_bytes_sent_total",
    "doradus_messages_received_total",
    "doradus_messages_dropped_total",
    "doradus_queue_depth",
    "doradus_message_latency_seconds",
    "doradus_node_cpu_percent",
    "doradus_node_memory_bytes",
)
OTEL_NAMES = (
    "doradus.messages.sent",
    "doradus.bytes.sent",
    "doradus.messages.received",
    "doradus.messages.dropped",
    "doradus.queue.depth",
    "doradus.message.latency",
    "doradus.node.cpu",
    "doradus.node.memory",
)
VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_PROTOCOL")
NOT_RUN = re.compile(r"checked\s+statically\s+here,\s+not\s+run", re.IGNORECASE)
IMAGE = re.compile(r"^[a-z0-9][a-z0-9./_-]*:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)$")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


def test_the_expected_files_exist() -> None:
    expected = [
        ROOT / "README.md",
        *COMPOSE_FILES,
        *COLLECTOR_FILES,
        *GUIDES,
        ROOT / "prometheus-grafana" / "prometheus.yml",
        ROOT / "prometheus-grafana" / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
        ROOT / "prometheus-grafana" / "grafana" / "provisioning" / "dashboards" / "doradus.yml",
        DASHBOARD,
        ROOT / "logstash" / "pipeline" / "doradus.conf",
    ]
    missing = [str(p.relative_to(ROOT)) for p in expected if not p.is_file()]
    assert not missing


@pytest.mark.parametrize("path", YAML_FILES, ids=ids(YAML_FILES))
def test_every_yaml_file_parses(path: Path) -> None:
    assert isinstance(load_yaml(path), dict), f"{path} is not a YAML mapping"


@pytest.mark.parametrize("path", JSON_FILES, ids=ids(JSON_FILES))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


def test_there_is_something_to_parse() -> None:
    assert len(YAML_FILES) >= 9
    assert DASHBOARD in JSON_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=ids(COMPOSE_FILES))
def test_compose_files_pin_images_and_publish_ports_on_loopback(path: Path) -> None:
    services = load_yaml(path)["services"]
    assert services
    for name, service in services.items():
        image = service.get("image", "")
        match = IMAGE.match(image)
        assert match, f"{name}: image {image!r} has no tag"
        assert match["tag"] != "latest", f"{name}: pin a version, not latest"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is published beyond loopback"
    assert any(service.get("ports") for service in services.values())


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=ids(COMPOSE_FILES))
def test_compose_files_mount_files_that_exist(path: Path) -> None:
    # doradus-token is created by the user (guide step 2); ${DORADUS_OUT} is the user's out/ folder.
    made_by_user = {"./doradus-token"}
    for name, service in load_yaml(path)["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith("./") and source not in made_by_user:
                assert (path.parent / source).exists(), f"{name} mounts missing {source}"


def test_each_stack_names_its_images_and_ports() -> None:
    wanted = {
        "prometheus-grafana": {
            "otel/opentelemetry-collector-contrib": {"4317", "4318", "8889"},
            "prom/prometheus": {"9090"},
            "grafana/grafana": {"3000"},
        },
        "elasticsearch-kibana": {
            "docker.elastic.co/elasticsearch/elasticsearch": {"9200"},
            "docker.elastic.co/kibana/kibana": {"5601"},
            "otel/opentelemetry-collector-contrib": {"4317", "4318"},
        },
        "logstash": {
            "docker.elastic.co/logstash/logstash": {"8080"},
            "docker.elastic.co/elasticsearch/elasticsearch": {"9200"},
        },
    }
    for stack, images in wanted.items():
        services = load_yaml(ROOT / stack / "docker-compose.yml")["services"]
        published = {
            service["image"].rsplit(":", 1)[0]: {str(p).rsplit(":", 1)[-1] for p in service.get("ports", [])}
            for service in services.values()
        }
        for image, ports in images.items():
            assert image in published, f"{stack}: no {image}"
            assert ports <= published[image], f"{stack}: {image} publishes {published[image]}"


@pytest.mark.parametrize("path", COLLECTOR_FILES, ids=ids(COLLECTOR_FILES))
def test_collectors_receive_otlp_on_4317_and_4318(path: Path) -> None:
    config = load_yaml(path)
    protocols = config["receivers"]["otlp"]["protocols"]
    assert str(protocols["grpc"]["endpoint"]).endswith(":4317")
    assert str(protocols["http"]["endpoint"]).endswith(":4318")
    pipelines = config["service"]["pipelines"]
    for signal in ("traces", "metrics", "logs"):
        assert "otlp" in pipelines[signal]["receivers"], f"{signal} does not use the otlp receiver"
    for pipeline in pipelines.values():
        for part in ("receivers", "processors", "exporters"):
            for component in pipeline.get(part, []):
                assert component in config[part], f"{component} is used but not configured"


def test_prometheus_stack_exports_to_prometheus_and_scrapes_collector_and_coordinator() -> None:
    folder = ROOT / "prometheus-grafana"
    collector = load_yaml(folder / "otel-collector.yaml")
    assert str(collector["exporters"]["prometheus"]["endpoint"]).endswith(":8889")
    assert "debug" in collector["exporters"]
    assert "prometheus" in collector["service"]["pipelines"]["metrics"]["exporters"]

    jobs = {job["job_name"]: job for job in load_yaml(folder / "prometheus.yml")["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets["otel-collector"] == ["otel-collector:8889"]
    coordinator = jobs["doradus-coordinator"]
    assert targets["doradus-coordinator"] == ["host.docker.internal:6300"]
    assert coordinator.get("metrics_path", "/metrics") == "/metrics"
    assert coordinator["authorization"]["credentials_file"] == "/etc/prometheus/doradus-token"
    assert "--bind" in (folder / "prometheus.yml").read_text()
    assert "--bind" in (folder / "guide.md").read_text()


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    folder = ROOT / "prometheus-grafana"
    (datasource,) = load_yaml(folder / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(folder / "grafana/provisioning/dashboards/doradus.yml")["providers"]
    grafana = load_yaml(folder / "docker-compose.yml")["services"]["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {datasource["uid"]}


def test_dashboard_queries_every_doradus_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    text = "\n".join(exprs)
    for name in PROMETHEUS_NAMES:
        assert name in text, f"the dashboard does not query {name}"
    assert re.search(r"histogram_quantile\(0\.5,.*doradus_message_latency_seconds_bucket", text)
    assert re.search(r"histogram_quantile\(0\.99,.*doradus_message_latency_seconds_bucket", text)
    assert all("by (le, source, target)" in e for e in exprs if "histogram_quantile" in e)
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for words in ("per output", "dropped", "queue depth", "p50", "p99", "cpu", "memory"):
        assert words in titles
    panel_ids = [p["id"] for p in dashboard["panels"]]
    assert len(panel_ids) == len(set(panel_ids))


def test_readme_documents_variables_metrics_and_spans() -> None:
    text = (ROOT / "README.md").read_text()
    for name in (
        *VARIABLES,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_LOGS_EXPORTER",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "DORADUS_LOG_LEVEL",
        "http://127.0.0.1:6300/metrics",
        "doradus.node.id",
        "doradus.dataflow",
        "doradus.run_id",
        "open_telemetry_context",
        "send <output>",
        "receive <input>",
        "node <id>",
        "PRODUCER",
        "CONSUMER",
        *PROMETHEUS_NAMES,
        *OTEL_NAMES,
    ):
        assert name in text, f"README.md does not mention {name}"
    assert NOT_RUN.search(text)


@pytest.mark.parametrize("path", GUIDES, ids=ids(GUIDES))
def test_guides_name_the_variables_and_say_they_are_not_run_here(path: Path) -> None:
    text = path.read_text()
    for name in VARIABLES:
        assert name in text, f"{path.name} does not mention {name}"
    assert "export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in text
    assert NOT_RUN.search(text), f"{path} must say its files are not run on this machine"


CONFIGS = [*YAML_FILES, ROOT / "logstash" / "pipeline" / "doradus.conf"]


@pytest.mark.parametrize("path", CONFIGS, ids=ids(CONFIGS))
def test_config_files_say_they_are_not_run_here(path: Path) -> None:
    assert re.search(r"checked statically .*not run", path.read_text(), re.IGNORECASE), path


def test_logstash_reads_the_json_lines_of_every_run() -> None:
    pipeline = (ROOT / "logstash" / "pipeline" / "doradus.conf").read_text()
    file_input = re.search(r"file\s*\{(?P<body>.*?)\n  \}", pipeline, re.DOTALL)
    assert file_input
    assert '"/doradus/out/*/logs.jsonl"' in file_input["body"]
    assert re.search(r"codec\s*=>\s*json", file_input["body"])
    assert re.search(r"http\s*\{[^}]*port\s*=>\s*8080", pipeline)
    assert re.search(r'match\s*=>\s*\["timestamp",\s*"ISO8601"\]', pipeline)
    logstash = load_yaml(ROOT / "logstash" / "docker-compose.yml")["services"]["logstash"]
    assert any(str(v).endswith(":/doradus/out:ro") for v in logstash["volumes"])
    assert any(str(v).startswith("./pipeline:") for v in logstash["volumes"])
    guide = (ROOT / "logstash" / "guide.md").read_text()
    for key in (
        "timestamp",
        "level",
        "dataflow",
        "run_id",
        "node",
        "machine",
        "message",
        "trace_id",
        "span_id",
        "source",
        "fields",
    ):
        assert f"`{key}`" in guide, f"the logstash guide does not describe the key {key}"


def test_elasticsearch_collector_exports_every_signal() -> None:
    config = load_yaml(ROOT / "elasticsearch-kibana" / "otel-collector.yaml")
    assert config["exporters"]["elasticsearch"]["endpoints"] == ["http://elasticsearch:9200"]
    for signal in ("traces", "metrics", "logs"):
        assert "elasticsearch" in config["service"]["pipelines"][signal]["exporters"]
