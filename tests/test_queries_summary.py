from __future__ import annotations

import pytest

from app.core.queries import iter_calls, summary
from app.core.records import CallRecord
from app.core.storage.db import open_database
from app.core.storage.writer import LogWriter


@pytest.mark.both_backends
def test_summary_counts_errors_and_unpriced_per_model_and_export_is_in_start_order(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        writer = LogWriter(engine, interval=0.01)
        recs = []
        for i, (outcome, cost) in enumerate(
            [("ok", 0.1), ("error", None), ("error", None), ("ok", None), ("cancelled", None)]
        ):
            rec = CallRecord(client_api="openai", endpoint="/v1/chat/completions", started_at=1000.0 + i)
            rec.provider, rec.upstream_model = "p", "m"
            rec.cost_usd, rec.cost_source = cost, ("table" if cost else "unpriced")
            rec.finish(outcome, 200 if outcome == "ok" else 500)
            recs.append(rec)
        for rec in reversed(recs):  # written newest first: ids do not follow start order
            writer.finished(rec)
        assert writer.flush()
        data = summary(engine)
        # failed and cancelled calls are billed for what they produced: an unknown price counts whatever the outcome
        assert (data["total"]["calls"], data["total"]["errors"], data["total"]["unpriced_calls"]) == (5, 3, 4)
        assert (data["models"][0]["errors"], data["models"][0]["cost_usd"]) == (3, 0.1)
        assert [r["call_id"] for r in iter_calls(engine, batch=2)] == [r.call_id for r in recs]
        assert [r["call_id"] for r in iter_calls(engine, since=1002.5)] == [r.call_id for r in recs[3:]]
        writer.close()
    finally:
        engine.dispose()  # the pool's connections: a PostgreSQL one left open is a ResourceWarning
