"""Everything that runs on a host: snapshot sources, the comparison and the fleet worker."""

__version__ = "0.1.0"
