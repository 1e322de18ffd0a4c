"""The old home of the inference-speed classifiers, now prodcat.training.compact.

Registered models are cloudpickled with their classes' module paths: versions trained before
the move name this module, so it must keep importing what they hold.
"""

from prodcat.training.compact import CalibratedLinearEnsemble, TemperatureScaled  # noqa: F401
