"""Which topics each read model reads, for the topic catalog (``unsilo.read_model_inputs``).

Static, unlike :attr:`projections.read_models.ReadModel.topics`, which waits for the
canonical topics to exist: the catalog only needs the names. A unit test keeps this map
and :data:`projections.read_models.READ_MODELS` naming the same read models.
"""

from __future__ import annotations

from hub.kafka.topics import canonical_topic
from projections.customer_360.builder import TOPICS as CUSTOMER_360_TOPICS
from projections.employee_directory.builder import TOPICS as DIRECTORY_TOPICS


def inputs() -> dict[str, list[str]]:
    """Read model name -> the topics it reads, as fnmatch patterns."""
    return {
        "mirror": ["unsilo.raw.*"],
        "store_sales": [canonical_topic("sale")],
        "inventory_position": [canonical_topic("stock_movement"), canonical_topic("sale")],
        "customer_360": list(CUSTOMER_360_TOPICS),
        "employee_directory": list(DIRECTORY_TOPICS),
    }
