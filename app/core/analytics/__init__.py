"""Agent analytics: tasks, tool-call reliability, escalation, budgets, retention and the executor probe.

The proxy's hot path only touches `policy.CallPolicy` (microseconds per call, all in memory); everything
that needs the database runs in the log writer's thread (`policy.CallPolicy.writer_hook`) or in the
query layer (`app.core.queries`). No Qt here.
"""
