"""The EPICS Archiver Appliance's retrieval API, served from collectors' histories."""

from epics_collector.retrieval._service import DEFAULT_PORT, RetrievalConfig, make_app

__all__ = ["DEFAULT_PORT", "RetrievalConfig", "make_app"]
