"""Debian's Prometheus scraping a real worker: every dashboard query and alert rule evaluates.

The rules are loaded as deploy/prometheus/alerts.yml ships them and evaluated every
second; each must report health "ok" (a rule that fails to evaluate, as one whose alert
labels collapse two series into one does, reports "err"). Each dashboard query must
evaluate, and return data wherever the worker exports its metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, Pipeline, bad_messages, free_port, synthetic

pytestmark = pytest.mark.integration
DEPLOY = ROOT / "deploy"


def api(port: int, path: str, **query: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/social-streams.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_dashboard_query_and_alert_rule_evaluates_against_a_worker(pipeline: Pipeline, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "this test runs Debian's prometheus package (apt-get install prometheus)"
    pipeline.start_worker()
    good = synthetic(150, seed=4)
    bad, _ = bad_messages(10)
    pipeline.produce(good + bad + good[:10])
    pipeline.consume_keys("enriched", {key for key, _ in good})

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{DEPLOY / 'prometheus' / 'alerts.yml'}]\n"
        "scrape_configs:\n"
        f"  - job_name: social-streams\n    static_configs: [{{targets: ['127.0.0.1:{pipeline.ports[0]}']}}]\n"
    )
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]  # fmt: skip
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:  # scraped a few times: rates over the last minute have points
            try:
                up = api(port, "query", query='count_over_time(up{job="social-streams"}[1m])')["data"]["result"]
                if up and float(up[0]["value"][1]) >= 8:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not scrape the worker"
            time.sleep(1)

        rules = [rule for group in api(port, "rules")["data"]["groups"] for rule in group["rules"]]
        assert len(rules) >= 7
        assert {rule["name"]: rule["health"] for rule in rules if rule["health"] != "ok"} == {}

        exported = set(re.findall(r"^(\w+?)(?:_bucket|_sum|_count)?(?:\{| )", pipeline.metrics(0), re.M))
        empty = []
        for expr in dashboard_queries():
            answer = api(port, "query", query=expr)
            assert answer["status"] == "success", (expr, answer)
            wanted = set(re.findall(r"\b(streams_\w+?)(?:_bucket|_sum|_count)?\b", expr)) or {"up"}
            if wanted <= exported | {"up"} and not answer["data"]["result"]:
                empty.append(expr)
        assert empty == []  # every query over metrics the worker exports has data
    finally:
        server.terminate()
        server.wait(timeout=30)
