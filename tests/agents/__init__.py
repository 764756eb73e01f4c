"""Real coding agents (Codex CLI, Claude Code, aider) pinned for the end-to-end tests in tests/test_real_*.py.

A package so the test modules import the harness as `agents.harness` (tests/ is on sys.path, like conftest),
ahead of any unrelated top-level `agents` package installed in the environment."""
