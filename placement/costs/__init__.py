"""The cost model: the one place where llmplace turns models, devices and requests
into seconds, bytes and joules.

- :mod:`placement.costs.roofline`: per-node physics (roofline times, weights, KV, workspace);
- :mod:`placement.costs.tables`: those folded into per-block arrays and transfer matrices;
- :mod:`placement.costs.throughput`: what a plan's resources can carry.
"""

from placement.costs.roofline import *  # noqa: F401,F403
from placement.costs.tables import *  # noqa: F401,F403
