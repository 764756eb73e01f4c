"""Downshift: route a coding agent's loop to a cheaper model, and measure what it costs."""

__version__ = "0.1.0"
