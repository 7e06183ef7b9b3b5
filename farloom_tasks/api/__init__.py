"""The query API and dashboard served by ``farloom serve``."""
