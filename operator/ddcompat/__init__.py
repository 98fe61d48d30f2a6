"""ddcompat: check ddtrace (Python) workloads against Datadog's compatibility tables at admission."""

__version__ = "0.1.0"
