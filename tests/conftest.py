"""Fixtures every test layer may use: real parts started on demand."""

pytest_plugins = ["helpers.bento", "helpers.postgres"]
