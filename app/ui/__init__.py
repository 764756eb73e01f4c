"""The PySide6 desktop app: a thin Qt layer over the headless core (`app.core`, `app.proxy`)."""
