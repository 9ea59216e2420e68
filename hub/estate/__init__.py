"""The demo legacy estate: finance, HR and sales databases, a workload, and the true figures.

``create_estate`` creates and seeds the three databases (SQLite files by default, any
SQLAlchemy URL otherwise), ``WorkloadSimulator`` keeps changing them like their users
would, and :func:`~hub.estate.figures.figures` computes, directly in SQL over the legacy
databases, the numbers every read model must equal.
"""

from hub.estate.database import DEFAULT_SEED, SYSTEMS, TABLES, create_estate, estate_columns, estate_urls
from hub.estate.figures import Figures, StoreSales, figures
from hub.estate.simulator import Change, WorkloadSimulator, simulated_clock

__all__ = [
    "DEFAULT_SEED",
    "SYSTEMS",
    "TABLES",
    "Change",
    "Figures",
    "StoreSales",
    "WorkloadSimulator",
    "create_estate",
    "estate_columns",
    "estate_urls",
    "figures",
    "simulated_clock",
]
