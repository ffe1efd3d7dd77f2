#!/usr/bin/env python3
"""Writes the Grafana dashboards of deploy/grafana/dashboards/ (streamrec-ops.json,
streamrec-marketing.json). The JSON files are committed; edit this script and re-run it
(`python3 tools/grafana_dashboards.py`) rather than editing the JSON by hand, so panel ids,
grid positions and the datasource stay consistent. tests/deploy_test.cc checks the output:
unique panel ids, the provisioned datasource uid, and metric names from deploy/metrics.txt.
"""
import json
import os

# Must equal the uid in deploy/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE = {"type": "prometheus", "uid": "streamrec-prometheus"}
SCHEMA_VERSION = 37  # Grafana 9.x and 10.x load it without migration prompts
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "grafana",
                       "dashboards")

INST = 'instance=~"$instance"'
SEG = 'segment=~"$segment"'


class Board:
    """Places panels left to right in rows of 24 grid units and numbers them."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x > 0:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        self.panels.append({"id": self.next_id, "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def add(self, kind, title, targets, unit="short", w=8, h=8, description="", options=None,
            field_config=None, transformations=None):
        refs = "ABCDEFGH"
        tgts = []
        for i, t in enumerate(targets):
            expr, legend = (t, "") if isinstance(t, str) else t
            tgt = {"refId": refs[i], "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            if kind in ("stat", "bargauge", "piechart", "table"):
                tgt["instant"] = True
                tgt["range"] = False
            if kind == "table":
                tgt["format"] = "table"
            tgts.append(tgt)
        defaults = {"unit": unit}
        if field_config:
            defaults.update(field_config)
        panel = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self._place(w, h),
            "targets": tgts,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        if kind == "timeseries" and not options:
            panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                                "tooltip": {"mode": "multi", "sort": "desc"}}
        if transformations:
            panel["transformations"] = transformations
        self.next_id += 1
        self.panels.append(panel)


def quantiles(metric, by="", qs=(0.5, 0.95, 0.99), sel=INST):
    group = "le" + (", " + by if by else "")
    out = []
    for q in qs:
        legend = f"p{int(q * 100)}" + (" {{" + by + "}}" if by else "")
        out.append((f"histogram_quantile({q}, sum by ({group}) "
                    f"(rate({metric}_bucket{{{sel}}}[$__rate_interval])))", legend))
    return out


def variable(name, query, label, multi=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"}, "definition": query,
        "refresh": 2, "multi": multi, "includeAll": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1, "hide": 0, "options": [],
    }


def dashboard(uid, title, description, board, variables, time_from, tags):
    return {
        "uid": uid, "title": title, "description": description, "tags": tags,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True,
        "timezone": "browser", "refresh": "30s", "graphTooltip": 1,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"title": "streamrec", "type": "dashboards", "tags": ["streamrec"],
                   "asDropdown": False, "includeVars": True, "keepTime": True}],
        "panels": board.panels,
    }


def ops():
    b = Board()
    ts = "timeseries"
    b.row("Overview")
    b.add("stat", "Ready", [(f"min(streamrec_ready{{{INST}}})", "ready")], unit="none", w=4, h=4,
          description="1 when assigned partitions are restored and the model is loaded.",
          field_config={"mappings": [{"type": "value", "options": {
              "0": {"text": "NOT READY", "color": "red"}, "1": {"text": "READY", "color": "green"}}}],
              "thresholds": {"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                          {"color": "green", "value": 1}]}},
          options={"colorMode": "background", "graphMode": "none",
                   "reduceOptions": {"calcs": ["lastNotNull"]}})
    b.add("stat", "Events consumed /s",
          [(f"sum(rate(streamrec_events_consumed_total{{{INST}}}[$__rate_interval]))", "")],
          unit="short", w=4, h=4)
    b.add("stat", "Assigned partitions", [(f"sum(streamrec_assigned_partitions{{{INST}}})", "")],
          unit="short", w=4, h=4)
    b.add("stat", "Consumer lag", [(f"sum(streamrec_consumer_lag_messages{{{INST}}})", "")],
          unit="short", w=4, h=4)
    b.add("stat", "Segment model version", [(f"max(streamrec_segment_model_version{{{INST}}})", "")],
          unit="none", w=4, h=4)
    b.add("stat", "Outbox pending", [(f"sum(streamrec_outbox_pending_records{{{INST}}})", "")],
          unit="short", w=4, h=4)

    b.row("Throughput")
    b.add(ts, "Events consumed by topic",
          [(f"sum by (topic) (rate(streamrec_events_consumed_total{{{INST}}}[$__rate_interval]))",
            "{{topic}}"),
           (f"sum(rate(streamrec_events_applied_total{{{INST}}}[$__rate_interval]))", "applied")],
          unit="short", description="Records consumed per second (valid + invalid) and valid events applied.")
    b.add(ts, "Output records acknowledged by kind",
          [(f"sum by (kind) (rate(streamrec_output_records_total{{{INST}}}[$__rate_interval]))",
            "{{kind}}")], unit="short")
    b.add(ts, "Lists",
          [(f"sum(rate(streamrec_lists_published_total{{{INST}}}[$__rate_interval]))", "published"),
           (f"sum(rate(streamrec_lists_unchanged_total{{{INST}}}[$__rate_interval]))", "unchanged"),
           (f"sum(rate(streamrec_lists_stale_refreshed_total{{{INST}}}[$__rate_interval]))",
            "stale refreshed")], unit="short",
          description="Lists per second: changed and sent to the outbox, recomputed but equal to "
                      "the published one, and refreshed by the freshness sweep.")

    b.row("Lag")
    b.add(ts, "Consumer lag per partition",
          [(f"sum by (topic, partition) (streamrec_consumer_lag_messages{{{INST}}})",
            "{{topic}}/{{partition}}")], unit="short", w=8)
    b.add(ts, "Input fetched ahead of processing",
          [(f"max by (instance) (streamrec_consumer_prefetch_bytes{{{INST}}})", "{{instance}}")],
          unit="bytes", w=8,
          description="Payload bytes librdkafka holds fetched but not yet processed; bounded by "
                      "kafka.max_prefetch_mb. At the bound under overload fetching stops and the "
                      "consumer lag grows instead (streamrec_consumer_prefetch_messages: records).")
    b.add(ts, "Event-time lag",
          [(f"max by (instance) (streamrec_event_time_lag_seconds{{{INST}}})", "{{instance}}")],
          unit="s", w=8,
          description="Wall clock minus the newest applied event time (large when replaying history).")

    b.row("Latency")
    b.add(ts, "Batch duration", quantiles("streamrec_batch_duration_seconds"), unit="s")
    b.add(ts, "Stage duration p95 by stage",
          quantiles("streamrec_stage_duration_seconds", by="stage", qs=(0.95,)), unit="s")
    b.add(ts, "Purchase → publish latency", quantiles("streamrec_purchase_to_publish_seconds"),
          unit="s", description="Kafka timestamp of a purchase to the delivery ack of the list it changed.")
    b.add(ts, "Records per batch", quantiles("streamrec_batch_records", qs=(0.5, 0.95)),
          unit="short", w=12)
    b.add(ts, "Batches /s",
          [(f"sum(rate(streamrec_batch_duration_seconds_count{{{INST}}}[$__rate_interval]))",
            "batches")], unit="short", w=12)

    b.row("Errors")
    b.add(ts, "Invalid events by reason",
          [(f"sum by (reason) (rate(streamrec_invalid_events_total{{{INST}}}[$__rate_interval]))",
            "{{reason}}")], unit="short")
    b.add(ts, "Dead letters, delivery and consumer errors",
          [(f"sum(rate(streamrec_dead_letters_total{{{INST}}}[$__rate_interval]))", "dead letters"),
           (f"sum(rate(streamrec_output_delivery_errors_total{{{INST}}}[$__rate_interval]))",
            "delivery errors"),
           (f"sum(rate(streamrec_consumer_errors_total{{{INST}}}[$__rate_interval]))",
            "consumer errors")], unit="short")
    b.add(ts, "Rebalances and backpressure pauses",
          [(f"sum(increase(streamrec_rebalances_total{{{INST}}}[$__rate_interval]))", "rebalances"),
           (f"sum(increase(streamrec_backpressure_pauses_total{{{INST}}}[$__rate_interval]))",
            "backpressure pauses")], unit="short")
    b.add(ts, "HTTP requests by route and code",
          [(f"sum by (route, code) (rate(streamrec_http_requests_total{{{INST}}}[$__rate_interval]))",
            "{{route}} {{code}}")], unit="reqps", w=24, h=6)

    b.row("Outbox and state (RocksDB)")
    b.add(ts, "Outbox pending", [(f"sum by (instance) (streamrec_outbox_pending_records{{{INST}}})",
                                  "{{instance}}")], unit="short",
          description="Written to the outbox, not yet acknowledged by Kafka.")
    b.add(ts, "RocksDB sizes",
          [(f"sum(streamrec_rocksdb_sst_bytes{{{INST}}})", "SST files"),
           (f"sum(streamrec_rocksdb_live_data_bytes{{{INST}}})", "live data"),
           (f"sum(streamrec_rocksdb_memtable_bytes{{{INST}}})", "memtables"),
           (f"sum(streamrec_rocksdb_block_cache_usage_bytes{{{INST}}})", "block cache")],
          unit="bytes")
    b.add(ts, "RocksDB pending compaction",
          [(f"sum(streamrec_rocksdb_pending_compaction_bytes{{{INST}}})", "pending compaction")],
          unit="bytes")
    b.add(ts, "RocksDB estimated keys",
          [(f"sum(streamrec_rocksdb_estimated_keys{{{INST}}})", "keys")], unit="short", w=24, h=6)

    b.row("Model health")
    b.add(ts, "Model versions",
          [(f"max(streamrec_segment_model_version{{{INST}}})", "segments"),
           (f"max(streamrec_als_model_version{{{INST}}})", "ALS")], unit="none")
    b.add(ts, "Re-fits by result",
          [(f"sum by (result) (increase(streamrec_segment_refits_total{{{INST}}}[$__rate_interval]))",
            "segments {{result}}"),
           (f"sum by (result) (increase(streamrec_als_refits_total{{{INST}}}[$__rate_interval]))",
            "ALS {{result}}")], unit="short")
    b.add(ts, "Re-fit duration",
          quantiles("streamrec_segment_refit_duration_seconds", qs=(0.5, 0.95))
          + [(e, "ALS " + l) for e, l in
             quantiles("streamrec_als_refit_duration_seconds", qs=(0.5, 0.95))], unit="s")
    b.add(ts, "K-Means objective: online vs last re-fit",
          [(f"max(streamrec_segment_online_objective{{{INST}}})", "online (smoothed)"),
           (f"max(streamrec_segment_refit_objective{{{INST}}})", "last re-fit")], unit="short",
          w=12, description="Mean squared distance per point. The online objective drifting well "
                            "above the re-fit's means the centres no longer fit the population.")
    b.add(ts, "Time since last successful re-fit",
          [(f"time() - max(streamrec_segment_last_refit_timestamp_seconds{{{INST}}})", "segments")],
          unit="s", w=12)
    return dashboard("streamrec-ops", "streamrec — operations",
                     "Throughput, lag, latency, errors, state size and model health of streamrec.",
                     b, [variable("instance", "label_values(streamrec_build_info, instance)",
                                  "instance")], "now-3h", ["streamrec"])


def marketing():
    b = Board()
    ts = "timeseries"
    bars = {"displayMode": "gradient", "orientation": "horizontal", "showUnfilled": True,
            "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    pie = {"pieType": "donut", "legend": {"displayMode": "table", "placement": "right",
                                          "values": ["percent"]},
           "reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    b.row("Segments")
    b.add("bargauge", "Customers by segment",
          [(f"sum by (segment) (streamrec_segment_customers{{{SEG}}})", "{{segment}}")],
          unit="short", options=bars)
    b.add("piechart", "Customer share", [(f"sum by (segment) (streamrec_segment_customers{{{SEG}}})",
                                          "{{segment}}")], unit="short", options=pie)
    b.add(ts, "Segment sizes over time",
          [(f"sum by (segment) (streamrec_segment_customers{{{SEG}}})", "{{segment}}")], unit="short")

    b.row("Revenue")
    b.add("bargauge", "Revenue by segment",
          [(f"sum by (segment) (streamrec_segment_revenue{{{SEG}}})", "{{segment}}")], unit="short",
          options=bars, description="Total spend of the segment's customers, in the feed's currency.")
    b.add("piechart", "Revenue share",
          [(f"sum by (segment) (streamrec_segment_revenue{{{SEG}}})", "{{segment}}")], unit="short",
          options=pie)
    b.add("bargauge", "Revenue per customer",
          [(f"sum by (segment) (streamrec_segment_revenue{{{SEG}}}) / "
            f"sum by (segment) (streamrec_segment_customers{{{SEG}}})", "{{segment}}")],
          unit="short", options=bars)

    b.row("Movements between segments")
    b.add("table", "Transitions in the time range (from → to)",
          [(f'sum by (from, to) (increase(streamrec_segment_transitions_total[$__range]))', "")],
          unit="short", w=12, h=10,
          description="Rows: segment moved from; columns: segment moved to.",
          transformations=[{"id": "groupingToMatrix", "options": {
              "rowField": "from", "columnField": "to", "valueField": "Value"}}],
          field_config={"custom": {"displayMode": "color-background-solid"},
                        "color": {"mode": "continuous-GrYlRd"}})
    b.add(ts, "Top moves per hour",
          [('topk(10, sum by (from, to) (rate(streamrec_segment_transitions_total[$__rate_interval])) * 3600)',
            "{{from}} → {{to}}")], unit="short", w=12, h=10)

    b.row("Conversions and uplift")
    conv = "streamrec_conversions_total"
    purch = "streamrec_purchases_total"
    b.add(ts, "Conversions /s by group",
          [(f"sum by (group) (rate({conv}{{{SEG}}}[$__rate_interval]))", "{{group}}")],
          unit="short", description="Purchase lines of an item on the customer's published list "
                                     "within metrics.attribution_window_days.")
    b.add("stat", "Conversion rate by group",
          [(f"sum by (group) (increase({conv}{{{SEG}}}[$__range])) / "
            f"sum by (group) (increase({purch}{{{SEG}}}[$__range]))", "{{group}}")],
          unit="percentunit", options={"reduceOptions": {"calcs": ["lastNotNull"]},
                                       "colorMode": "value", "graphMode": "none"},
          description="Conversions / purchase lines of customers with a published list, over the "
                      "time range.")
    b.add("table", "Conversion rate by segment and group",
          [(f"sum by (segment, group) (increase({conv}{{{SEG}}}[$__range])) / "
            f"sum by (segment, group) (increase({purch}{{{SEG}}}[$__range]))", "")],
          unit="percentunit",
          transformations=[{"id": "groupingToMatrix", "options": {
              "rowField": "segment", "columnField": "group", "valueField": "Value"}}])

    def rate_by_segment(group, window):
        return (f'sum by (segment) (increase({conv}{{group="{group}", {SEG}}}[{window}])) / '
                f'sum by (segment) (increase({purch}{{group="{group}", {SEG}}}[{window}]))')
    uplift = "(" + rate_by_segment("treatment", "$__range") + ") - (" + \
        rate_by_segment("control", "$__range") + ")"
    b.add("bargauge", "Uplift by segment (treatment − control conversion rate)",
          [(uplift, "{{segment}}")], unit="percentunit", w=12, h=9, options=bars,
          description="Treatment conversion rate minus control conversion rate over the time range.")
    uplift7 = "(" + rate_by_segment("treatment", "7d") + ") - (" + \
        rate_by_segment("control", "7d") + ")"
    b.add(ts, "Uplift by segment, trailing 7 days", [(uplift7, "{{segment}}")],
          unit="percentunit", w=12, h=9)
    return dashboard("streamrec-marketing", "streamrec — segments and campaigns",
                     "Segment sizes and revenue, movements between segments, conversions and "
                     "uplift of the recommendation lists (treatment vs control).",
                     b, [variable("segment", "label_values(streamrec_segment_customers, segment)",
                                  "segment")], "now-7d", ["streamrec"])


def main():
    for name, board in (("streamrec-ops.json", ops()), ("streamrec-marketing.json", marketing())):
        path = os.path.normpath(os.path.join(OUT_DIR, name))
        with open(path, "w") as f:
            json.dump(board, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
